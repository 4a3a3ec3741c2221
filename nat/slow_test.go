package nat

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// randRules draws a valid rule set: n rules per list of random lengths
// (not byte-aligned) in both families, redrawn until Check accepts them.
func randRules(rng *rand.Rand, n int) Rules {
	draw := func() []Rule {
		var out []Rule
		for len(out) < n {
			var x Rule
			if rng.IntN(3) > 0 {
				bits := 8 + rng.IntN(25)
				x = Rule{Internal: netip.PrefixFrom(randAddr4(rng), bits).Masked(), External: netip.PrefixFrom(randAddr4(rng), bits).Masked()}
			} else {
				bits := 16 + rng.IntN(113)
				x = Rule{Internal: netip.PrefixFrom(randAddr6(rng), bits).Masked(), External: netip.PrefixFrom(randAddr6(rng), bits).Masked()}
			}
			if rng.IntN(8) == 0 && len(out) > 0 { // a swap of an earlier rule
				y := out[rng.IntN(len(out))]
				x = Rule{Internal: y.External, External: y.Internal}
			}
			if (Rules{Ingress: append(out[:len(out):len(out)], x)}).Check() == nil {
				out = append(out, x)
			}
		}
		return out
	}
	return Rules{Ingress: draw(), Egress: draw()}
}

func randAddr4(rng *rand.Rand) netip.Addr {
	var b [4]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return netip.AddrFrom4(b)
}

func randAddr6(rng *rand.Rand) netip.Addr {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return netip.AddrFrom16(b)
}

// randAddrIn is an address of family v6 that most often lies in one of
// the rules' prefixes (either side), with random host bits.
func randAddrIn(rng *rand.Rand, r Rules, v6 bool) netip.Addr {
	all := append(append([]Rule(nil), r.Ingress...), r.Egress...)
	var ps []netip.Prefix
	for _, x := range all {
		if x.Internal.Addr().Is6() == v6 {
			ps = append(ps, x.Internal, x.External)
		}
	}
	a := randAddr4(rng)
	if v6 {
		a = randAddr6(rng)
	}
	if len(ps) == 0 || rng.IntN(5) == 0 {
		return a
	}
	return graft(ps[rng.IntN(len(ps))], a)
}

// randSpec draws a packet of one of the kinds the translator handles.
func randSpec(rng *rand.Rand, r Rules, quoted bool) spec {
	v6 := rng.IntN(2) == 0
	s := spec{src: randAddrIn(rng, r, v6), dst: randAddrIn(rng, r, v6), id: rng.Uint32(), ttl: byte(1 + rng.IntN(255))}
	data := make([]byte, rng.IntN(300))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	switch k := rng.IntN(10); {
	case k < 3:
		s.proto = 6
		h := make([]byte, 20+4*rng.IntN(3))
		for i := range h {
			h[i] = byte(rng.Uint32())
		}
		h[12] = byte(len(h)/4) << 4
		s.l4 = append(h, data...)
	case k < 6:
		s.proto = []byte{17, 17, 17, 136, 33}[rng.IntN(5)]
		s.l4 = append(make([]byte, 8+4*rng.IntN(2)), data...)
		s.l4[0], s.l4[1] = byte(rng.Uint32()), byte(rng.Uint32())
		s.udpNoCsum = s.proto == 17 && !v6 && rng.IntN(3) == 0
	case k < 8 || quoted:
		s.proto = 1
		if v6 {
			s.proto = 58
		}
		s.l4 = append([]byte{8, 0, 0, 0, 1, 2, 3, 4}, data...)
		if v6 {
			s.l4[0] = 128
		}
	default:
		q := randSpec(rng, r, true)
		for q.v6() != v6 {
			q = randSpec(rng, r, true)
		}
		q.fragLen, q.ext = 0, nil
		s.icmpErr = &q
		if v6 {
			s.icmpType = byte(1 + rng.IntN(4))
			s.quoteLen = 40 + rng.IntN(200)
		} else {
			s.icmpType = []byte{3, 11, 12}[rng.IntN(3)]
			s.quoteLen = 20 + rng.IntN(200)
		}
		if rng.IntN(8) == 0 {
			s.quoteLen = rng.IntN(40) // too short to translate
		}
	}
	if !quoted && rng.IntN(6) == 0 {
		if v6 {
			s.ext, s.extType = []byte{0, 0, 1, 4, 0, 0, 0, 0}, []byte{0, 60}[rng.IntN(2)]
		} else {
			s.ext = []byte{7, 7, 4, 0, 0, 0, 0, 0} // record route
		}
	}
	if !quoted && rng.IntN(5) == 0 {
		n := len(s.transport())
		s.fragOff = 8 * rng.IntN(n/8+1)
		if s.fragOff >= n {
			s.fragOff = 0
		}
		s.fragLen = 8 * (1 + rng.IntN(8))
		s.mf = s.fragOff+s.fragLen < n
	}
	return s
}

// Differential test against the slow reference: random rule sets (many
// rules, so both the scan and the binary search run), random packets with
// addresses inside and outside the rules, both directions. The translator
// updates checksums incrementally; the reference maps the addresses and
// serializes the packet again with every checksum computed from scratch.
// They must agree byte for byte, verdict for verdict.
func TestDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	counts := map[Verdict]int{}
	for i := 0; i < n; i++ {
		if i%500 == 0 {
			t.Logf("rule set %d", i/500)
		}
		rules := randRules(rng, []int{1, 3, 12, 40}[(i/500)%4])
		tr := mustCompile(t, rules)
		s := randSpec(rng, rules, false)
		out := rng.IntN(2) == 0
		p := s.serialize()
		var got Result
		if out {
			got = tr.Outbound(p)
		} else {
			got = tr.Inbound(p)
		}
		ref, v := refTranslate(rules, s, out)
		want := ref.serialize()
		counts[got.Verdict]++
		if got.Verdict != v || !bytes.Equal(p, want) {
			t.Fatalf("packet %d (outbound %v), rules %v:\n%+v\nverdict %v, reference %v\ngot\n%s\nwant\n%s", i, out, rules, s, got.Verdict, v, hex.Dump(p), hex.Dump(want))
		}
	}
	t.Logf("verdicts: %v", counts)
	for _, v := range []Verdict{Unchanged, Translated, Ambiguous} {
		if counts[v] < n/20 {
			t.Errorf("only %d of %d packets %v: the generator does not cover the case", counts[v], n, v)
		}
	}
}
