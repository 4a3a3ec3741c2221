package nat

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func r(in, ex string) Rule { return Rule{Internal: pfx(in), External: pfx(ex)} }

func TestCheck(t *testing.T) {
	many := make([]Rule, MaxRules+1)
	for i := range many {
		many[i] = Rule{Internal: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24), External: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(i >> 8), byte(i), 0}), 24)}
	}
	cases := []struct {
		name  string
		rules Rules
		code  error
		list  string
		index int
		other int    // for ErrOverlap
		side  string // for ErrOverlap
		msg   string
	}{
		{"host bits", Rules{Ingress: []Rule{{Internal: netip.MustParsePrefix("10.1.0.1/16"), External: pfx("100.65.0.0/16")}}}, ErrPrefix, Ingress, 0, 0, "", "not a canonical prefix"},
		{"missing external", Rules{Egress: []Rule{{Internal: pfx("10.1.0.0/16")}}}, ErrPrefix, Egress, 0, 0, "", ""},
		{"mapped ipv4", Rules{Ingress: []Rule{r("::ffff:10.1.0.0/112", "fd00::/112")}}, ErrPrefix, Ingress, 0, 0, "", ""},
		{"family", Rules{Ingress: []Rule{r("10.1.0.0/16", "fd00::/16")}}, ErrFamily, Ingress, 0, 0, "", "different IP families"},
		{"length", Rules{Egress: []Rule{r("10.9.0.0/16", "100.99.0.0/24")}}, ErrLength, Egress, 0, 0, "", "10.9.0.0/16 as 100.99.0.0/24: internal and external have different lengths"},
		{"identity", Rules{Ingress: []Rule{r("10.1.0.0/16", "10.1.0.0/16")}}, ErrIdentity, Ingress, 0, 0, "", "the same prefix"},
		{"internal overlap", Rules{Ingress: []Rule{r("10.1.0.0/16", "100.65.0.0/16"), r("10.2.0.0/16", "100.66.0.0/16"), r("10.1.4.0/24", "100.67.0.0/24")}}, ErrOverlap, Ingress, 2, 0, "internal",
			"internal 10.1.4.0/24 is inside 10.1.0.0/16 of ingress[0] (10.1.0.0/16 as 100.65.0.0/16)"},
		{"external overlap", Rules{Egress: []Rule{r("10.8.0.0/16", "100.99.0.0/16"), r("10.9.0.0/16", "100.99.0.0/16")}}, ErrOverlap, Egress, 1, 0, "external", "external 100.99.0.0/16 equals 100.99.0.0/16 of egress[0]"},
		{"earlier rule contained", Rules{Ingress: []Rule{r("10.1.4.0/24", "100.65.4.0/24"), r("10.1.0.0/16", "100.66.0.0/16")}}, ErrOverlap, Ingress, 1, 0, "internal", "internal 10.1.0.0/16 contains 10.1.4.0/24 of ingress[0]"},
		{"too many", Rules{Ingress: many}, ErrTooMany, Ingress, MaxRules, 0, "", "at most 1024 per list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.rules.Check()
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("Check = %v, want one error", err)
			}
			e := es[0]
			if !errors.Is(err, c.code) || e.List != c.list || e.Index != c.index {
				t.Errorf("got %v (%s[%d]), want code %v at %s[%d]", e.Code, e.List, e.Index, c.code, c.list, c.index)
			}
			if c.code == ErrOverlap && (e.Other != c.other || e.Side != c.side) {
				t.Errorf("overlap with %s[%d] on %s, want [%d] on %s", e.List, e.Other, e.Side, c.other, c.side)
			}
			if !strings.Contains(e.Error(), c.msg) {
				t.Errorf("message %q lacks %q", e.Error(), c.msg)
			}
			if _, cerr := Compile(c.rules); !errors.Is(cerr, c.code) {
				t.Errorf("Compile = %v, want %v", cerr, c.code)
			}
		})
	}
	// Valid: lists are checked separately (the same prefix may be an
	// ingress and an egress internal), and a swap is a bijection.
	ok := Rules{
		Ingress: []Rule{r("10.1.0.0/16", "100.65.0.0/16"), r("100.65.0.0/16", "10.1.0.0/16"), r("fd01::/48", "fd65::/48")},
		Egress:  []Rule{r("10.1.0.0/16", "100.99.0.0/16")},
	}
	if err := ok.Check(); err != nil {
		t.Errorf("valid rules refused: %v", err)
	}
}

func TestMapAddrAndPrefix(t *testing.T) {
	rules := []Rule{r("10.1.0.0/16", "100.65.0.0/16"), r("10.2.0.0/13", "172.24.0.0/13"), r("fd01::/61", "fd65:0:0:8::/61")}
	a := netip.MustParseAddr
	for _, c := range []struct {
		in    string
		toExt bool
		want  string
		ok    bool
	}{
		{"10.1.2.3", true, "100.65.2.3", true},
		{"100.65.2.3", false, "10.1.2.3", true},
		{"10.3.255.1", true, "172.27.255.1", true}, // /13: host bits in the second byte kept
		{"10.9.0.1", true, "10.9.0.1", false},
		{"fd01:0:0:7::1", true, "fd65:0:0:f::1", true}, // /61: the low 3 bits of the fourth group kept
		{"fd01:0:0:8::1", true, "fd01:0:0:8::1", false},
	} {
		got, ok := MapAddr(rules, a(c.in), c.toExt)
		if got != a(c.want) || ok != c.ok {
			t.Errorf("MapAddr(%s, %v) = %s %v, want %s %v", c.in, c.toExt, got, ok, c.want, c.ok)
		}
	}
	for _, c := range []struct {
		in    string
		toExt bool
		want  string
		cov   Coverage
	}{
		{"10.1.0.0/16", true, "100.65.0.0/16", Whole},
		{"10.1.128.0/17", true, "100.65.128.0/17", Whole},
		{"100.65.7.0/24", false, "10.1.7.0/24", Whole},
		{"10.0.0.0/8", true, "10.0.0.0/8", Partial},
		{"10.9.0.0/16", true, "10.9.0.0/16", Untouched},
		{"100.65.0.0/16", true, "100.65.0.0/16", Untouched}, // an external is not a from-side of toExt
		{"fd01:0:0:4::/62", true, "fd65:0:0:c::/62", Whole},
		{"fd01::/48", true, "fd01::/48", Partial},
	} {
		got, cov := MapPrefix(rules, pfx(c.in), c.toExt)
		if got != pfx(c.want) || cov != c.cov {
			t.Errorf("MapPrefix(%s, %v) = %s %v, want %s %v", c.in, c.toExt, got, cov, c.want, c.cov)
		}
	}
}

func TestRulesHelpers(t *testing.T) {
	if !testRules.Reverse().Reverse().Equal(testRules) || testRules.Reverse().Equal(testRules) {
		t.Error("Reverse is not an involution")
	}
	if testRules.Len() != 4 || testRules.Empty() || !(Rules{}).Empty() {
		t.Error("Len/Empty")
	}
	if l, i := testRules.ByID(3); l != Egress || i != 1 {
		t.Errorf("ByID(3) = %s %d", l, i)
	}
	if l, i := testRules.ByID(1); l != Ingress || i != 1 {
		t.Errorf("ByID(1) = %s %d", l, i)
	}
}

func TestMapSet(t *testing.T) {
	rules := []Rule{r("10.1.0.0/16", "100.65.0.0/16"), r("10.2.0.0/16", "100.66.0.0/16"), r("fd01::/48", "fd65::/48")}
	ps := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, pfx(s))
		}
		return out
	}
	for _, c := range []struct {
		in    []netip.Prefix
		toExt bool
		want  []netip.Prefix
	}{
		{ps("10.1.0.0/16"), true, ps("100.65.0.0/16")},
		{ps("10.1.0.0/17", "10.1.128.0/17"), true, ps("100.65.0.0/16")},
		{ps("10.1.4.0/24", "10.9.0.0/16"), true, ps("10.9.0.0/16", "100.65.4.0/24")},
		// 10.0.0.0/14 minus 10.1/16 and 10.2/16, plus their images.
		{ps("10.0.0.0/14"), true, ps("10.0.0.0/16", "10.3.0.0/16", "100.65.0.0/16", "100.66.0.0/16")},
		{ps("100.65.0.0/16", "fd65:0:0:1::/64"), false, ps("10.1.0.0/16", "fd01:0:0:1::/64")},
		{ps("172.16.0.0/12"), true, ps("172.16.0.0/12")},
		{nil, true, nil},
	} {
		got := MapSet(rules, c.in, c.toExt)
		if !slices.Equal(got, c.want) {
			t.Errorf("MapSet(%v, %v) = %v, want %v", c.in, c.toExt, got, c.want)
		}
	}
}
