package nat

import (
	"net/netip"
	"testing"
)

// fuzzRules are the tests' rules plus prefixes that are not byte-aligned.
var fuzzRules = Rules{
	Ingress: append([]Rule{r("172.16.0.0/13", "172.24.0.0/13")}, testRules.Ingress...),
	Egress:  append([]Rule{r("fd0a:0:0:8::/61", "fd9a::/61")}, testRules.Egress...),
}

// FuzzTranslate feeds arbitrary bytes to both directions and checks:
// nothing panics or changes length; a packet left unchanged or dropped is
// untouched; a translated packet translated back with the reverse rules
// is the original again (a checksum field that was 0xffff may come back
// as 0x0000, the same ones' complement zero); and every checksum that
// verified before still verifies after.
func FuzzTranslate(f *testing.F) {
	tr, back := mustCompile(f, fuzzRules), mustCompile(f, fuzzRules.Reverse())
	for _, p := range [][]byte{
		tcpPkt(f, "10.9.0.5", "100.65.0.2"),
		tcpPkt(f, "10.1.0.2", "100.99.0.5"),
		tcpPkt(f, "fd09::5", "fd65::2"),
		udpPkt(f, "10.9.3.4", "100.65.200.1"),
		udpNoCsum(f, "10.9.0.5", "100.65.0.2"),
		echoPkt(f, "fd09::5", "fd65::2"),
		echoPkt(f, "172.17.0.1", "10.9.0.1"),
		icmpErr(f, "10.1.0.1", "100.99.0.5", tcpPkt(f, "100.99.0.5", "10.1.0.2"), 60),
		icmpErr(f, "fd01::1", "fd99::5", tcpPkt(f, "fd99::5", "fd01::2"), 300),
		timeExceeded(f, "10.1.7.1", "100.99.0.5", udpPkt(f, "100.99.0.5", "10.1.0.2"), 28),
		timeExceeded(f, "fd01::7:1", "fd99::5", echoPkt(f, "fd99::5", "fd01::2"), 200),
		(spec{src: netip.MustParseAddr("10.9.0.5"), dst: netip.MustParseAddr("100.65.0.2"), proto: 6, l4: make([]byte, 60), fragLen: 16, mf: true}).serialize(),
		(spec{src: netip.MustParseAddr("fd09::5"), dst: netip.MustParseAddr("fd65::2"), proto: 17, l4: make([]byte, 60), ext: []byte{0, 0, 1, 4, 0, 0, 0, 0}, fragOff: 8, fragLen: 16}).serialize(),
	} {
		f.Add(p, true)
		f.Add(p, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, out bool) {
		p := append([]byte(nil), data...)
		before := verify(p)
		var res Result
		if out {
			res = tr.Outbound(p)
		} else {
			res = tr.Inbound(p)
		}
		if len(p) != len(data) {
			t.Fatalf("length changed: %d -> %d", len(data), len(p))
		}
		if res.Verdict != Translated {
			if string(p) != string(data) {
				t.Fatalf("verdict %v but the packet changed", res.Verdict)
			}
			return
		}
		after := verify(p)
		for _, c := range []struct {
			name            string
			judged, ok, ok2 bool
		}{
			{"ipv4 header", before.hasIP, before.ip, after.ip},
			{"transport", before.hasL4, before.l4, after.l4},
			{"quoted ipv4 header", before.hasQuoteIP, before.quoteIP, after.quoteIP},
		} {
			if c.judged && c.ok && !c.ok2 {
				t.Errorf("%s checksum verified before translation, not after", c.name)
			}
		}
		if before.hasIP != after.hasIP || before.hasL4 != after.hasL4 {
			t.Errorf("the checks that apply changed: %+v -> %+v", before, after)
		}
		again := append([]byte(nil), p...)
		var rb Result
		if out {
			rb = back.Outbound(again)
		} else {
			rb = back.Inbound(again)
		}
		if rb.Verdict != Translated {
			t.Fatalf("reverse translation: %v", rb.Verdict)
		}
		for i := 0; i < len(data); i++ {
			if again[i] == data[i] {
				continue
			}
			// Only a 16-bit 0xffff that came back as 0x0000.
			if i+1 < len(data) && data[i] == 0xff && data[i+1] == 0xff && again[i] == 0 && again[i+1] == 0 {
				i++
				continue
			}
			t.Fatalf("reverse translation differs at byte %d: %#x, was %#x", i, again[i], data[i])
		}
	})
}
