package names

import (
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkDecide: one decision for a client asking for another client's
// name (the common case), and for a name that goes upstream.
func BenchmarkDecide(b *testing.B) {
	for _, c := range []struct{ name, qname string }{{"own zone", "bob.east.internal."}, {"upstream", "www.example.com."}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := Decide(eastZone, dir, alice, c.qname, dns.TypeA); d.Action == Refuse {
					b.Fatal(d.Why)
				}
			}
		})
	}
}
