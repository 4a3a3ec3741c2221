package wgspec

import (
	"net/netip"
	"testing"
)

func TestTunnelMTU(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.0.2")
	v6 := netip.MustParseAddr("2001:db8::2")
	mapped := netip.MustParseAddr("::ffff:198.18.0.2")
	tests := []struct {
		underlay int
		ep       netip.Addr
		want     int
	}{
		{1500, v4, 1440},
		{1500, v6, 1420},
		{1500, mapped, 1440},
		{1500, netip.Addr{}, 1420}, // unknown family: assume IPv6
		{0, v4, 1440},              // unknown underlay: 1500
		{9000, v4, 8940},
		{1400, v6, 1320},
		{1300, v6, 1280}, // never below the IPv6 minimum
	}
	for _, tt := range tests {
		if got := TunnelMTU(tt.underlay, tt.ep); got != tt.want {
			t.Errorf("TunnelMTU(%d, %v) = %d, want %d", tt.underlay, tt.ep, got, tt.want)
		}
	}
	if v4, v6 := MaxMSS(1420); v4 != 1380 || v6 != 1360 {
		t.Errorf("MaxMSS(1420) = %d, %d", v4, v6)
	}
}
