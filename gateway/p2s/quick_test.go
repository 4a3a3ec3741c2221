package p2s

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/gateway/keys"
)

func TestQuickRoundTrip(t *testing.T) {
	priv, _ := keys.GeneratePrivate()
	gw, _ := keys.GeneratePrivate()
	q := QuickConfig{
		PrivateKey: priv, PublicKey: priv.Public(),
		Addresses: []netip.Prefix{mp("172.16.201.7/32"), mp("fd00:cafe::7/128")},
		DNS:       []string{"10.1.0.53"},
		Peers: []QuickPeer{{PublicKey: gw.Public(), Endpoint: "vpn.example.net:51821",
			AllowedIPs: []netip.Prefix{mp("10.1.0.0/16"), mp("fd00:1::/48")}, Keepalive: 25}},
	}
	text := q.Render("vgate client alice")
	for _, want := range []string{
		"# vgate client alice\n[Interface]\nPrivateKey = " + priv.Base64() + "\n",
		"Address = 172.16.201.7/32, fd00:cafe::7/128\n", "DNS = 10.1.0.53\n",
		"[Peer]\nPublicKey = " + gw.Public().String() + "\n", "Endpoint = vpn.example.net:51821\n",
		"AllowedIPs = 10.1.0.0/16, fd00:1::/48\n", "PersistentKeepalive = 25\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered config lacks %q:\n%s", want, text)
		}
	}
	back, err := ParseQuick(text)
	if err != nil {
		t.Fatal(err)
	}
	if back.PrivateKey != priv || !slices.Equal(back.Addresses, q.Addresses) || !slices.Equal(back.DNS, q.DNS) ||
		len(back.Peers) != 1 || back.Peers[0].PublicKey != gw.Public() || back.Peers[0].Keepalive != 25 ||
		!slices.Equal(back.Peers[0].AllowedIPs, q.Peers[0].AllowedIPs) || back.Peers[0].Endpoint != "vpn.example.net:51821" {
		t.Fatalf("round trip: %+v", back)
	}

	// What `wg setconf` gets: no Address or DNS, everything else.
	stripped := StripQuick(text)
	if strings.Contains(stripped, "Address") || strings.Contains(stripped, "DNS") || !strings.Contains(stripped, "PrivateKey = ") ||
		!strings.Contains(stripped, "AllowedIPs = 10.1.0.0/16") || !strings.Contains(stripped, "PersistentKeepalive") {
		t.Fatalf("stripped:\n%s", stripped)
	}

	uapi, err := back.UAPI(func(string) (netip.AddrPort, error) { return netip.MustParseAddrPort("198.18.0.1:51821"), nil })
	if err != nil || !strings.Contains(uapi, "endpoint=198.18.0.1:51821\n") || !strings.Contains(uapi, "allowed_ip=fd00:1::/48\n") {
		t.Fatalf("uapi: %v\n%s", err, uapi)
	}
}

func TestQuickWithoutPrivateKey(t *testing.T) {
	priv, _ := keys.GeneratePrivate()
	gw, _ := keys.GeneratePrivate()
	q := QuickConfig{PublicKey: priv.Public(), Addresses: []netip.Prefix{mp("172.16.201.7/32")},
		Peers: []QuickPeer{{PublicKey: gw.Public(), Endpoint: "198.18.0.1:51821", AllowedIPs: []netip.Prefix{mp("10.1.0.0/16")}}}}
	text := q.Render("")
	if strings.Contains(text, "\nPrivateKey") || !strings.Contains(text, priv.Public().String()) {
		t.Fatalf("config without private key:\n%s", text)
	}
	if _, err := ParseQuick(text); err == nil || !strings.Contains(err.Error(), "PrivateKey") {
		t.Fatalf("parse without private key: %v", err)
	}
	// The user adds their key: then it parses.
	text = strings.Replace(text, "[Interface]\n", "[Interface]\nPrivateKey = "+priv.Base64()+"\n", 1)
	if _, err := ParseQuick(text); err != nil {
		t.Fatal(err)
	}
}

func TestParseQuickErrors(t *testing.T) {
	priv, _ := keys.GeneratePrivate()
	head := "[Interface]\nPrivateKey = " + priv.Base64() + "\n"
	for name, tc := range map[string]struct{ text, want string }{
		"no peer":     {head, "no [Peer]"},
		"postup":      {head + "PostUp = rm -rf /\n[Peer]\nPublicKey = " + priv.Public().String() + "\n", "line 3: postup: not supported"},
		"bad address": {head + "Address = nope\n", "line 3: address"},
		"bad section": {head + "[Foo]\n", "unknown section"},
		"no key":      {"[Interface]\nAddress = 10.0.0.1/32\n[Peer]\nPublicKey = " + priv.Public().String() + "\n", "no PrivateKey"},
		"bad key":     {"[Interface]\nPrivateKey = c2VjcmV0\n", "privatekey"},
	} {
		_, err := ParseQuick(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), priv.Base64()) {
			t.Errorf("%s: error echoes the private key", name)
		}
	}
}
