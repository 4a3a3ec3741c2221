package laptop

import (
	"net/netip"
	"slices"
	"testing"
)

func TestHandshaken(t *testing.T) {
	const pub = "a8dac1d8a70a751f0f699fb14ba1cff7b79cf4fbd8f09f44c6e6b9d1d62c9f2e"
	for _, tc := range []struct {
		dump string
		want bool
	}{
		{"private_key=x\nlisten_port=0\n", false},
		{"public_key=" + pub + "\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n", false},
		{"public_key=" + pub + "\nlast_handshake_time_sec=1800000000\nlast_handshake_time_nsec=5\n", true},
	} {
		if got := handshaken(tc.dump); got != tc.want {
			t.Errorf("handshaken(%q) = %v, want %v", tc.dump, got, tc.want)
		}
	}
}

func TestSplitDefault(t *testing.T) {
	mp := netip.MustParsePrefix
	for in, want := range map[string][]netip.Prefix{
		"0.0.0.0/0":   {mp("0.0.0.0/1"), mp("128.0.0.0/1")},
		"::/0":        {mp("::/1"), mp("8000::/1")},
		"10.1.0.0/16": {mp("10.1.0.0/16")},
	} {
		if got := splitDefault(mp(in)); !slices.Equal(got, want) {
			t.Errorf("splitDefault(%s) = %v, want %v", in, got, want)
		}
	}
}
