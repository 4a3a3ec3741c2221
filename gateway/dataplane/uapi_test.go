package dataplane

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/wgspec"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestDiffPrefixes(t *testing.T) {
	add, del := wgspec.DiffPrefixes(pfx("10.2.0.0/16", "10.3.0.0/16"), pfx("10.3.0.0/16", "10.4.0.0/16", "10.4.0.0/16"))
	if len(add) != 1 || add[0].String() != "10.4.0.0/16" || len(del) != 1 || del[0].String() != "10.2.0.0/16" {
		t.Fatalf("add=%v del=%v", add, del)
	}
	add, del = wgspec.DiffPrefixes(pfx("fd00:2::/48"), pfx("fd00:2::/48"))
	if len(add)+len(del) != 0 {
		t.Fatalf("equal sets: add=%v del=%v", add, del)
	}
}

func mustKey(t *testing.T) keys.PrivateKey {
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestUpdateUAPI(t *testing.T) {
	k1, k2 := mustKey(t).Public(), mustKey(t).Public()
	base := wgspec.PeerSpec{PublicKey: k1, Endpoint: netip.MustParseAddrPort("198.18.0.2:51820"), Keepalive: 25 * time.Second, AllowedIPs: pfx("10.2.0.0/16", "10.2.255.254/32")}
	tests := []struct {
		name   string
		want   wgspec.PeerSpec
		has    []string
		hasNot []string
	}{
		{"unchanged", base, nil, []string{"public_key"}},
		{"add and remove prefix", func() wgspec.PeerSpec { s := base; s.AllowedIPs = pfx("10.2.0.0/16", "10.9.0.0/16"); return s }(),
			[]string{"update_only=true", "allowed_ip=10.9.0.0/16", "allowed_ip=-10.2.255.254/32"}, []string{"replace_allowed_ips", "endpoint="}},
		{"endpoint roams", func() wgspec.PeerSpec { s := base; s.Endpoint = netip.MustParseAddrPort("198.18.0.9:51820"); return s }(),
			[]string{"endpoint=198.18.0.9:51820"}, []string{"allowed_ip", "persistent_keepalive"}},
		{"keepalive", func() wgspec.PeerSpec { s := base; s.Keepalive = 1500 * time.Millisecond; return s }(),
			[]string{"persistent_keepalive_interval=2"}, []string{"allowed_ip"}},
		{"new key", func() wgspec.PeerSpec { s := base; s.PublicKey = k2; return s }(),
			[]string{"public_key=" + k1.Hex() + "\nremove=true", "public_key=" + k2.Hex(), "allowed_ip=10.2.0.0/16"}, []string{"update_only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := UpdateUAPI(base, tt.want)
			if tt.has == nil && got != "" {
				t.Fatalf("want no change, got %q", got)
			}
			for _, s := range tt.has {
				if !strings.Contains(got, s) {
					t.Errorf("missing %q in\n%s", s, got)
				}
			}
			for _, s := range tt.hasNot {
				if strings.Contains(got, s) {
					t.Errorf("unexpected %q in\n%s", s, got)
				}
			}
		})
	}
	// Adds come before removes, so coverage never has a gap.
	s := base
	s.AllowedIPs = pfx("10.2.0.0/17", "10.2.128.0/17")
	got := UpdateUAPI(base, s)
	if strings.Index(got, "allowed_ip=10.2.0.0/17") > strings.Index(got, "allowed_ip=-10.2.0.0/16") {
		t.Errorf("removal before addition:\n%s", got)
	}
}

func TestParsePeerStats(t *testing.T) {
	priv := mustKey(t)
	pub := mustKey(t).Public()
	other := mustKey(t).Public()
	dump := "private_key=" + priv.Hex() + "\nlisten_port=51820\n" +
		"public_key=" + other.Hex() + "\nrx_bytes=1\n" +
		"public_key=" + pub.Hex() + "\nprotocol_version=1\nendpoint=198.18.0.2:51820\n" +
		"last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=100\nrx_bytes=200\n" +
		"persistent_keepalive_interval=25\nallowed_ip=10.2.0.0/16\n"
	st, found, err := ParsePeerStats(dump, pub)
	if err != nil || !found {
		t.Fatalf("found=%v err=%v", found, err)
	}
	if st.RxBytes != 200 || st.TxBytes != 100 || st.Endpoint != "198.18.0.2:51820" ||
		!st.LastHandshake.Equal(time.Unix(1700000000, 5)) || len(st.AllowedIPs) != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if _, found, _ := ParsePeerStats(dump, mustKey(t).Public()); found {
		t.Fatal("found a peer that is not in the dump")
	}
	// The gateway parses every tunnel's dump every second: lines are not
	// copied (the map, two peers, the key decoding and one prefix list).
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ParsePeerStats(dump, pub) }); n > 8 {
		t.Errorf("%v allocations per dump, want at most 8", n)
	}
	if st, _, _ := ParsePeerStats(strings.ReplaceAll(dump, "\n", "\r\n"), pub); st.RxBytes != 200 || len(st.AllowedIPs) != 1 {
		t.Errorf("CRLF lines: %+v", st)
	}
	if _, _, err := ParsePeerStats("public_key="+pub.Hex()+"\nrx_bytes=x\n", pub); err == nil {
		t.Fatal("bad counter accepted")
	}
	if strings.Contains(DeviceUAPI(priv, wgspec.PeerSpec{PublicKey: pub}), priv.Base64()) {
		t.Fatal("UAPI text must use the hex key form")
	}
}

func TestParseDumpAllPeers(t *testing.T) {
	a, b := mustKey(t).Public(), mustKey(t).Public()
	dump := "private_key=" + mustKey(t).Hex() + "\n" +
		"public_key=" + a.Hex() + "\nlast_handshake_time_sec=1700000000\nrx_bytes=5\n" +
		"public_key=" + b.Hex() + "\ntx_bytes=7\n"
	all, err := ParseDump(dump)
	if err != nil || len(all) != 2 {
		t.Fatalf("ParseDump = %v, %v", all, err)
	}
	if all[a].RxBytes != 5 || all[a].LastHandshake.IsZero() || all[b].TxBytes != 7 || !all[b].LastHandshake.IsZero() {
		t.Fatalf("a = %+v, b = %+v", all[a], all[b])
	}
}
