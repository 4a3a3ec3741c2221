package ipsec

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/ipsec"
)

func TestOfPeering(t *testing.T) {
	remote := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fd00:2::/48")}
	v4 := func(src, dst string) []byte {
		p := make([]byte, 20)
		p[0] = 0x45
		s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
		copy(p[12:], s[:])
		copy(p[16:], d[:])
		return p
	}
	v6 := func(src, dst string) []byte {
		p := make([]byte, 40)
		p[0] = 0x60
		s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
		copy(p[8:], s[:])
		copy(p[24:], d[:])
		return p
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"to the peering", v4("10.1.0.2", "192.168.3.4"), true},
		{"from the peering", v4("192.168.3.4", "10.1.0.2"), true},
		{"another peering", v4("10.1.0.2", "172.16.0.1"), false},
		{"ipv6", v6("fd00:1::2", "fd00:2::2"), true},
		{"ipv6 elsewhere", v6("fd00:1::2", "fd00:3::2"), false},
		{"short", []byte{0x45, 0}, false},
		{"empty", nil, false},
		{"not ip", make([]byte, 40), false},
	} {
		if got := ofPeering(tc.pkt, remote); got != tc.want {
			t.Errorf("%s: ofPeering = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWarnLegacy(t *testing.T) {
	var buf bytes.Buffer
	k := &Kind{log: slog.New(slog.NewTextHandler(&buf, nil)), warned: map[string]string{}}
	weak := ipsec.Peer{Name: "old", IKE: []string{"3des-sha1-modp1024", "aes256-sha256-modp2048"}, ESP: []string{"aes256gcm16"}}
	k.warnLegacy(weak)
	k.warnLegacy(weak) // unchanged: said once
	k.warnLegacy(ipsec.Peer{Name: "new", IKE: []string{"aes256-sha256-modp2048"}})
	if n := strings.Count(buf.String(), "legacy (weak) algorithms"); n != 1 || !strings.Contains(buf.String(), "3des-sha1-modp1024") || strings.Contains(buf.String(), "peering=new") {
		t.Errorf("legacy warnings:\n%s", buf.String())
	}
}

// The status row of an IPsec peering: up, the time its SAs came up; down,
// the last time it was up and the endpoint it had, or the configured one.
func TestIPsecStats(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		s     ipsec.State
		hs    time.Time
		endpt string
	}{
		{"up", ipsec.State{Endpoint: "198.18.0.9:500", Remote: "198.18.0.9", UpSince: t0, LastUp: t0.Add(time.Hour)}, t0, "198.18.0.9:500"},
		{"down after a new PSK", ipsec.State{Reason: "auth_failed", Remote: "198.18.0.9", LastUp: t0.Add(time.Hour)}, t0.Add(time.Hour), "198.18.0.9"},
		{"down, was up", ipsec.State{Reason: "peer_unreachable", Endpoint: "198.18.0.9:4500", Remote: "hq.example", UpSince: t0, LastUp: t0.Add(time.Hour)}, t0.Add(time.Hour), "198.18.0.9:4500"},
		{"never up", ipsec.State{Reason: "no_response", Remote: "hq.example"}, time.Time{}, "hq.example"},
	} {
		got := ipsecStats(tc.s)
		if !got.LastHandshake.Equal(tc.hs) || got.Endpoint != tc.endpt {
			t.Errorf("%s: handshake %v endpoint %q; want %v %q", tc.name, got.LastHandshake, got.Endpoint, tc.hs, tc.endpt)
		}
	}
}
