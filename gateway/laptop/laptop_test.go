package laptop

import (
	"net/netip"
	"slices"
	"testing"
)

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
