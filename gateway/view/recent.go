package view

import (
	"sync"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/window"
)

// Drop counters are shown with their growth over the last minute beside
// the total, so that old drops do not read as something happening now.
// View.Status samples them each time it runs (every second under `vgate run`).
const (
	recentSpan = time.Minute
	recentStep = 5 * time.Second
)

type recentCounters struct {
	once sync.Once
	set  *window.Set
}

// fill samples st's drop counters and sets their last-minute fields.
func (r *recentCounters) fill(st *api.Status, now time.Time) {
	r.once.Do(func() { r.set = window.NewSet(recentSpan, recentStep) })
	at := func(key string, total uint64) *uint64 {
		if n, ok := r.set.Observe(key, now, total); ok {
			return &n
		}
		return nil
	}
	for i := range st.Peerings {
		p := &st.Peerings[i]
		p.DroppedSourceLastMinute = at("peering/"+p.Name+"/dropped_source", p.DroppedSource)
	}
	for _, c := range [...]struct {
		key   string
		total uint64
	}{
		{"unknown_index", st.Port.DroppedUnknownIndex},
		{"malformed", st.Port.DroppedMalformed},
		{"queue_full", st.Port.DroppedQueueFull},
		{"not_open", st.Port.DroppedNotOpen},
	} {
		if n := at("port/"+c.key, c.total); n != nil {
			if st.Port.DroppedLastMinute == nil {
				st.Port.DroppedLastMinute = map[string]uint64{}
			}
			st.Port.DroppedLastMinute[c.key] = *n
		}
	}
	if d := st.DNS; d != nil {
		d.QueriesLastMinute = r.each(now, "dns/", d.Queries)
	}
	if e := st.Enroll; e != nil {
		e.AttemptsLastMinute = r.each(now, "enroll/", e.Attempts)
	}
	if p := st.P2S; p != nil {
		p.DeniedLastMinute = at("p2s/denied", p.Denied)
		p.PacketsLastMinute = r.each(now, "p2s/packets/", p.Packets)
	}
}

// each samples every counter of m under prefix and returns the growth of
// those it can tell (nil if none).
func (r *recentCounters) each(now time.Time, prefix string, m map[string]uint64) map[string]uint64 {
	var out map[string]uint64
	for k, v := range m {
		if n, ok := r.set.Observe(prefix+k, now, v); ok {
			if out == nil {
				out = map[string]uint64{}
			}
			out[k] = n
		}
	}
	return out
}
