package names

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/vgate-project/vgate/nat"
)

func TestMapForwarded(t *testing.T) {
	mp := netip.MustParsePrefix
	rules := []nat.Rule{
		{Internal: mp("10.1.0.0/16"), External: mp("100.65.0.0/16")},
		{Internal: mp("fd00:1::/48"), External: mp("fd00:65::/48")},
	}
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, c := range []struct {
		name  string
		in    []string
		want  []string // nil with nx: NXDOMAIN
		nx    bool
		moved bool
	}{
		{"mapped", []string{"h.b. 1 IN A 10.1.4.5", "h.b. 1 IN AAAA fd00:1::5"}, []string{"h.b.\t1\tIN\tA\t100.65.4.5", "h.b.\t1\tIN\tAAAA\tfd00:65::5"}, false, true},
		{"untouched", []string{"h.b. 1 IN A 192.0.2.1"}, []string{"h.b.\t1\tIN\tA\t192.0.2.1"}, false, false},
		{"ambiguous dropped", []string{"h.b. 1 IN A 100.65.0.1", "h.b. 1 IN A 10.1.0.1"}, []string{"h.b.\t1\tIN\tA\t100.65.0.1"}, false, true},
		{"only ambiguous", []string{"h.b. 1 IN A 100.65.0.1"}, nil, true, true},
		{"cname kept", []string{"a.b. 1 IN CNAME h.b.", "h.b. 1 IN A 10.1.0.9"}, []string{"a.b.\t1\tIN\tCNAME\th.b.", "h.b.\t1\tIN\tA\t100.65.0.9"}, false, true},
	} {
		m := new(dns.Msg)
		for _, s := range c.in {
			m.Answer = append(m.Answer, rr(s))
		}
		moved := MapForwarded(m, rules)
		if moved != c.moved || (m.Rcode == dns.RcodeNameError) != c.nx || len(m.Answer) != len(c.want) {
			t.Errorf("%s: changed %v rcode %d answer %v", c.name, moved, m.Rcode, m.Answer)
			continue
		}
		for i, w := range c.want {
			if m.Answer[i].String() != w {
				t.Errorf("%s: answer %d = %q, want %q", c.name, i, m.Answer[i].String(), w)
			}
		}
	}
	if m := (&dns.Msg{Answer: []dns.RR{rr("h.b. 1 IN A 10.1.0.1")}}); MapForwarded(m, nil) {
		t.Error("changed without rules")
	}
}
