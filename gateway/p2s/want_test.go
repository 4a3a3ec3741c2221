package p2s

import (
	"net/netip"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/relay"
)

// Two plans of equal point_to_site sections are the same device state,
// whatever the section's address; any planned difference is a change.
func TestSameWant(t *testing.T) {
	section := func() *config.PointToSite {
		return &config.PointToSite{ListenPort: 51821, AddressPool: []netip.Prefix{netip.MustParsePrefix("172.16.201.0/24")},
			Groups: []config.Group{{Name: "staff"}}}
	}
	base := &Want{Config: section(), MTU: 1420, StateDir: "/s", Self: []netip.Addr{netip.MustParseAddr("10.1.0.1")}}
	change := func(f func(*Want)) *Want {
		q := *base
		q.Config = section()
		f(&q)
		return &q
	}
	for _, tt := range []struct {
		name string
		a, b *Want
		same bool
	}{
		{"equal section, another pointer", base, change(func(*Want) {}), true},
		{"both nil", nil, nil, true},
		{"one nil", base, nil, false},
		{"pool", base, change(func(q *Want) { q.Config.AddressPool = []netip.Prefix{netip.MustParsePrefix("172.16.202.0/24")} }), false},
		{"mtu", base, change(func(q *Want) { q.MTU = 1380 }), false},
		{"relay", base, change(func(q *Want) { q.Relay = relay.Target{URL: "https://r/"} }), false},
		{"own addresses", base, change(func(q *Want) { q.Self = nil }), false},
	} {
		if got := same(tt.a, tt.b); got != tt.same {
			t.Errorf("%s: same = %v, want %v", tt.name, got, tt.same)
		}
	}
}
