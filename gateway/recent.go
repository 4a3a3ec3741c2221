package gateway

import (
	"sync"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/window"
)

// Drop counters are shown with their growth over the last minute beside
// the total, so that old drops do not read as something happening now.
// Status samples them each time it runs (every second under `vgate run`).
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
	port := map[string]uint64{
		"unknown_index": st.Port.DroppedUnknownIndex,
		"malformed":     st.Port.DroppedMalformed,
		"queue_full":    st.Port.DroppedQueueFull,
		"not_open":      st.Port.DroppedNotOpen,
	}
	for k, v := range port {
		if n := at("port/"+k, v); n != nil {
			if st.Port.DroppedLastMinute == nil {
				st.Port.DroppedLastMinute = map[string]uint64{}
			}
			st.Port.DroppedLastMinute[k] = *n
		}
	}
	if p := st.P2S; p != nil {
		p.DeniedLastMinute = at("p2s/denied", p.Denied)
		for verdict, v := range p.Packets {
			if n := at("p2s/packets/"+verdict, v); n != nil {
				if p.PacketsLastMinute == nil {
					p.PacketsLastMinute = map[string]uint64{}
				}
				p.PacketsLastMinute[verdict] = *n
			}
		}
	}
}
