package dataplane

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/nat"
)

// NAT at the TUN seam (docs/nat.md): a peering's 1:1 prefix rules
// (wgspec.PeerSpec.NAT) translate what crosses its tunnel. Everything on this
// side of the seam — kernel routes, the planned AllowedIPs and so the
// source check, MSS clamping, the demand count — sees addresses as this
// side sees them; the tunnel carries them as the peer numbers them, and
// so does a capture (it records what crosses the tunnel). In clampTUN:
//
//	Read  (into the tunnel):   destination check → demand → MSS → translate → capture
//	Write (out of the tunnel): translate → source check → MSS → capture (translated back) → TUN
//
// A packet a rule applies to but that cannot be translated (nat.Verdict
// Drop) is dropped and counted. The rules are replaced whole by one atomic
// store, so a packet is translated by either the old rules or the new
// ones; without rules the cost is one atomic load per batch.

// NATCounts are packets and their bytes (IP packet lengths).
type NATCounts struct {
	Packets, Bytes uint64
}

// NATDrops counts dropped packets by why (nat.Verdict).
type NATDrops struct {
	Malformed, Ambiguous, SourceRouted uint64
}

// NATRuleStats are one rule's counters: packets it translated into the
// tunnel (Outbound) and out of it (Inbound). A packet two rules translate
// (one for each address) counts for both.
type NATRuleStats struct {
	List     string // nat.Ingress or nat.Egress
	Index    int
	Rule     nat.Rule
	Outbound NATCounts
	Inbound  NATCounts
}

// NATStats is a snapshot of a tunnel's translation counters. The totals
// count each translated packet once; they and the drops last for the
// tunnel's life, a rule's counters as long as the rule stays unchanged
// (in the same list) across reloads.
type NATStats struct {
	Rules             []NATRuleStats
	Outbound, Inbound NATCounts
	DroppedOutbound   NATDrops
	DroppedInbound    NATDrops
}

// natCounter is the counters of one rule, or of a direction's total.
type natCounter struct {
	packets, bytes [2]atomic.Uint64 // [Outbound-1], [Inbound-1]
}

// natState is one set of compiled rules with their counters (by rule ID).
type natState struct {
	tr, undo *nat.Translator // undo reverses tr (for the capture)
	counters []*natCounter
}

// natSeam holds a tunnel's translation state and its long-lived counters.
type natSeam struct {
	state   atomic.Pointer[natState]
	total   natCounter
	dropped [2][3]atomic.Uint64 // [dir][verdict - nat.Malformed]
}

// set compiles rules and makes them the tunnel's; empty rules turn the
// translation off. Counters of rules present before (same list, same
// prefixes) carry over. On error nothing changes.
func (s *natSeam) set(rules nat.Rules) error {
	if rules.Empty() {
		s.state.Store(nil)
		return nil
	}
	tr, err := nat.Compile(rules)
	if err != nil {
		return fmt.Errorf("nat rules: %w", err)
	}
	undo, err := nat.Compile(rules.Reverse())
	if err != nil { // cannot fail when rules compile
		return fmt.Errorf("nat rules reversed: %w", err)
	}
	st := &natState{tr: tr, undo: undo, counters: make([]*natCounter, rules.Len())}
	old := s.state.Load()
	for id := range st.counters {
		if old != nil {
			if j, ok := findRule(old.tr.Rules(), rules, id); ok {
				st.counters[id] = old.counters[j]
				continue
			}
		}
		st.counters[id] = new(natCounter)
	}
	s.state.Store(st)
	return nil
}

// findRule finds rule id of rs among old's rules (same list, same rule).
func findRule(old, rs nat.Rules, id int) (int, bool) {
	list, i := rs.ByID(id)
	if list == nat.Ingress {
		for j, x := range old.Ingress {
			if x == rs.Ingress[i] {
				return j, true
			}
		}
		return 0, false
	}
	for j, x := range old.Egress {
		if x == rs.Egress[i] {
			return len(old.Ingress) + j, true
		}
	}
	return 0, false
}

// tally adds up a batch's translations of one rule before it touches the
// rule's counters: consecutive packets of a flow hit the same rule, so a
// batch costs about one atomic add per rule and counter.
type tally struct {
	id             int32
	packets, bytes uint64
}

func (t *tally) add(st *natState, dir Direction, id int32, n int) {
	if id < 0 {
		return
	}
	if id != t.id {
		t.flush(st, dir)
		t.id = id
	}
	t.packets++
	t.bytes += uint64(n)
}

func (t *tally) flush(st *natState, dir Direction) {
	if t.packets > 0 && t.id >= 0 {
		c := st.counters[t.id]
		c.packets[dir-1].Add(t.packets)
		c.bytes[dir-1].Add(t.bytes)
	}
	*t = tally{id: -1}
}

// natBatch counts one Read's or Write's translations.
type natBatch struct {
	src, dst       tally
	packets, bytes uint64
}

func newNATBatch() natBatch { return natBatch{src: tally{id: -1}, dst: tally{id: -1}} }

// count records r for a packet of n bytes; it reports whether to drop it.
func (b *natBatch) count(s *natSeam, st *natState, dir Direction, r nat.Result, n int) bool {
	switch {
	case r.Verdict == nat.Translated:
		b.packets++
		b.bytes += uint64(n)
		b.src.add(st, dir, r.SrcRule, n)
		b.dst.add(st, dir, r.DstRule, n)
	case r.Verdict.Drop():
		s.dropped[dir-1][r.Verdict-nat.Malformed].Add(1)
		return true
	}
	return false
}

func (b *natBatch) flush(s *natSeam, st *natState, dir Direction) {
	b.src.flush(st, dir)
	b.dst.flush(st, dir)
	if b.packets > 0 {
		s.total.packets[dir-1].Add(b.packets)
		s.total.bytes[dir-1].Add(b.bytes)
	}
}

// outbound translates the packets read from the TUN (bufs[i][offset:]
// [:sizes[i]], i < n) into the tunnel; a packet that cannot be translated
// gets size 0, which wireguard-go skips.
func (s *natSeam) outbound(bufs [][]byte, sizes []int, offset, n int) {
	st := s.state.Load()
	if st == nil {
		return
	}
	b := newNATBatch()
	for i := range n {
		if sizes[i] <= 0 {
			continue
		}
		r := st.tr.Outbound(bufs[i][offset : offset+sizes[i]])
		if b.count(s, st, Outbound, r, sizes[i]) {
			sizes[i] = 0
		}
	}
	b.flush(s, st, Outbound)
}

// inbound translates the packets about to be written to the TUN
// (bufs[i][offset:]) out of the tunnel, dropping those that cannot be
// translated (bufs compacted in place, order kept). It returns the state
// it used, for the capture.
func (s *natSeam) inbound(bufs [][]byte, offset int) ([][]byte, *natState) {
	st := s.state.Load()
	if st == nil {
		return bufs, nil
	}
	b := newNATBatch()
	kept := bufs[:0]
	for _, p := range bufs {
		if len(p) > offset {
			r := st.tr.Inbound(p[offset:])
			if b.count(s, st, Inbound, r, len(p)-offset) {
				continue
			}
		}
		kept = append(kept, p)
	}
	b.flush(s, st, Inbound)
	return kept, st
}

// stats snapshots the counters.
func (s *natSeam) stats() NATStats {
	var out NATStats
	load := func(c *natCounter, dir Direction) NATCounts {
		return NATCounts{Packets: c.packets[dir-1].Load(), Bytes: c.bytes[dir-1].Load()}
	}
	drops := func(dir Direction) NATDrops {
		d := &s.dropped[dir-1]
		return NATDrops{Malformed: d[0].Load(), Ambiguous: d[1].Load(), SourceRouted: d[2].Load()}
	}
	out.Outbound, out.Inbound = load(&s.total, Outbound), load(&s.total, Inbound)
	out.DroppedOutbound, out.DroppedInbound = drops(Outbound), drops(Inbound)
	st := s.state.Load()
	if st == nil {
		return out
	}
	rules := st.tr.Rules()
	for id, c := range st.counters {
		list, i := rules.ByID(id)
		r := rules.Ingress
		if list == nat.Egress {
			r = rules.Egress
		}
		out.Rules = append(out.Rules, NATRuleStats{List: list, Index: i, Rule: r[i], Outbound: load(c, Outbound), Inbound: load(c, Inbound)})
	}
	return out
}

// NATStats returns the tunnel's translation counters.
func (t *Tunnel) NATStats() NATStats { return t.tun.nat.stats() }

// tapInbound copies a packet written to the TUN to the capture as it
// crossed the tunnel: translated back when the seam translated it (st).
func tapInbound(c *Capture, st *natState, pkt []byte, now time.Time) {
	if st == nil {
		c.Tap(Inbound, pkt, now)
		return
	}
	c.tapUndo(Inbound, pkt, now, st.undo)
}
