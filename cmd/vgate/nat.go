package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/vgate-project/vgate/api"
)

// printNATStatus lists a peering's NAT rules under it with what each
// translated: out is into the tunnel (toward the peer), in out of it.
func printNATStatus(w io.Writer, p api.PeeringStatus) {
	n := p.NAT
	if n == nil {
		return
	}
	fmt.Fprintf(w, "%s: nat: out %d pkts %s, in %d pkts %s\n", p.Name, n.Out.Packets, humanBytes(n.Out.Bytes), n.In.Packets, humanBytes(n.In.Bytes))
	for _, r := range n.Rules {
		fmt.Fprintf(w, "%s:   %-11s %s as %s  out %d pkts %s, in %d pkts %s\n", p.Name, r.Rule, r.Internal, r.External,
			r.Out.Packets, humanBytes(r.Out.Bytes), r.In.Packets, humanBytes(r.In.Bytes))
	}
	for _, d := range []struct {
		dir string
		m   map[string]uint64
	}{{"out", n.DroppedOut}, {"in", n.DroppedIn}} {
		if len(d.m) == 0 {
			continue
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(d.m)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, d.m[k]))
		}
		fmt.Fprintf(w, "%s:   dropped %s (not translatable): %s\n", p.Name, d.dir, strings.Join(parts, ", "))
	}
}
