package p2s

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gaissmai/bart"
)

// Returns counts, per peering, the client packets the policy let through
// toward that peering's routes (Sent) and the packets for clients that
// came from addresses behind it (Back). A peering whose Sent grows while
// its Back stays flat most likely does not route the pool back (the
// static-routing rule in README.md): the gateway turns that into a hint
// in `vgate status` (returnwatch.go).
//
// The route table is immutable and swapped whole by SetRoutes; counters
// live as long as the Returns, so a peering keeps its counts across route
// changes. Count never allocates.
type Returns struct {
	table atomic.Pointer[bart.Table[*ReturnCount]]

	mu     sync.Mutex
	counts map[string]*ReturnCount
}

// ReturnCount is one peering's pair of counters.
type ReturnCount struct {
	Sent atomic.Uint64 // client packets allowed toward the peering's routes
	Back atomic.Uint64 // packets for clients from sources behind the peering
}

// SetRoutes replaces the table: routes maps a peering's name to the
// prefixes the kernel routes through it.
func (r *Returns) SetRoutes(routes map[string][]netip.Prefix) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]*ReturnCount{}
	}
	t := new(bart.Table[*ReturnCount])
	for name, pfxs := range routes {
		c := r.counts[name]
		if c == nil {
			c = new(ReturnCount)
			r.counts[name] = c
		}
		for _, p := range pfxs {
			t.Insert(p, c)
		}
	}
	for name := range r.counts {
		if _, ok := routes[name]; !ok {
			delete(r.counts, name)
		}
	}
	r.table.Store(t)
}

// Counts returns the counters of every peering with routes, by name.
func (r *Returns) Counts() map[string]*ReturnCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]*ReturnCount, len(r.counts))
	for k, v := range r.counts {
		m[k] = v
	}
	return m
}

// Names lists the peerings with routes, sorted.
func (r *Returns) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.counts))
	for k := range r.counts {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// sent counts a client packet (IP header first) that the policy allowed,
// by its destination; back counts a packet for a client by its source.
// Without routes to peerings nothing is parsed.
func (r *Returns) sent(pkt []byte) { r.count(pkt, false) }
func (r *Returns) back(pkt []byte) { r.count(pkt, true) }

func (r *Returns) count(pkt []byte, back bool) {
	t := r.table.Load()
	if t == nil || t.Size() == 0 {
		return
	}
	src, dst, ok := addrs(pkt)
	if !ok {
		return
	}
	if back {
		if c, ok := t.Lookup(src); ok {
			c.Back.Add(1)
		}
	} else if c, ok := t.Lookup(dst); ok {
		c.Sent.Add(1)
	}
}
