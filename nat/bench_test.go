package nat

import (
	"net/netip"
	"testing"
)

// manyRules is n ingress rules per family (v4 10.x.y.0/24 as 100.x.y.0/24,
// v6 fd00:x:y::/48 as fd65:x:y::/48) and one egress rule each.
func manyRules(n int) Rules {
	var rs Rules
	for i := range n {
		rs.Ingress = append(rs.Ingress,
			Rule{Internal: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24), External: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(i >> 8), byte(i), 0}), 24)},
			Rule{Internal: netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, byte(i >> 8), byte(i)}), 48), External: netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x65, byte(i >> 8), byte(i)}), 48)})
	}
	rs.Egress = testRules.Egress
	return rs
}

// Translating allocates nothing, whatever the packet and the verdict.
func TestZeroAllocs(t *testing.T) {
	tr := mustCompile(t, manyRules(MaxRules/2))
	pkts := [][]byte{
		tcpPkt(t, "10.9.0.5", "100.3.255.2"),
		tcpPkt(t, "fd09::5", "fd65:3:ff::2"),
		udpPkt(t, "10.8.0.5", "10.7.0.2"),
		icmpErr(t, "10.3.255.1", "100.99.0.5", tcpPkt(t, "100.99.0.5", "10.3.255.2"), 60),
		icmpErr(t, "fd00:3:ff::1", "fd99::5", tcpPkt(t, "fd99::5", "fd00:3:ff::2"), 300),
		tcpPkt(t, "10.9.0.5", "100.3.255.2")[:60],
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range pkts {
			tr.Outbound(p)
			tr.Inbound(p)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round, want 0", allocs)
	}
}

// BenchmarkTranslate: a 200-byte TCP packet into the tunnel, with one
// rule and with MaxRules/2 per family (the lookup is then a binary
// search), and a packet no rule maps (what every other packet pays). Each
// op translates the packet and translates it back with the reverse rules:
// two translations.
func BenchmarkTranslate(b *testing.B) {
	for _, c := range []struct {
		name     string
		rules    Rules
		src, dst string
		verdict  Verdict
	}{
		{"v4/1rule", testRules, "10.9.0.5", "100.65.0.2", Translated},
		{"v4/512rules", manyRules(MaxRules / 2), "10.9.0.5", "100.1.77.2", Translated},
		{"v6/1rule", testRules, "fd09::5", "fd65::2", Translated},
		{"v6/512rules", manyRules(MaxRules / 2), "fd09::5", "fd65:1:77::2", Translated},
		{"v4/unmapped", manyRules(MaxRules / 2), "10.8.0.5", "172.16.0.2", Unchanged},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr, back := mustCompile(b, c.rules), mustCompile(b, c.rules.Reverse())
			p := tcpPkt(b, c.src, c.dst)
			if r := tr.Outbound(append([]byte(nil), p...)); r.Verdict != c.verdict {
				b.Fatal(r.Verdict)
			}
			b.SetBytes(int64(2 * len(p)))
			b.ReportAllocs()
			for b.Loop() {
				tr.Outbound(p)
				back.Outbound(p)
			}
		})
	}
}
