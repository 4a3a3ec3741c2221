package view

import (
	"fmt"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/nat"
)

// natStatus is a peering's rules as status shows them, each with the
// seam's counters (st; nil or zero for a rule the tunnel does not run
// yet); nil without rules.
func natStatus(p *config.Peering, stats *dataplane.NATStats) *api.NATStatus {
	rules := p.NATRules()
	if rules.Empty() {
		return nil
	}
	var st dataplane.NATStats
	if stats != nil {
		st = *stats
	}
	out := &api.NATStatus{
		Out: api.NATCounts(st.Outbound), In: api.NATCounts(st.Inbound),
		DroppedOut: natDrops(st.DroppedOutbound), DroppedIn: natDrops(st.DroppedInbound),
	}
	for id := range rules.Len() {
		list, i := rules.ByID(id)
		r := rules.Ingress
		if list == nat.Egress {
			r = rules.Egress
		}
		rs := api.NATRuleStatus{Rule: fmt.Sprintf("%s[%d]", list, i), Internal: r[i].Internal, External: r[i].External}
		for _, x := range st.Rules {
			if x.List == list && x.Index == i && x.Rule == r[i] {
				rs.Out, rs.In = api.NATCounts(x.Outbound), api.NATCounts(x.Inbound)
			}
		}
		out.Rules = append(out.Rules, rs)
	}
	return out
}

func natDrops(d dataplane.NATDrops) map[string]uint64 {
	m := map[string]uint64{}
	for k, v := range map[string]uint64{"malformed": d.Malformed, "ambiguous": d.Ambiguous, "source-routed": d.SourceRouted} {
		if v > 0 {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
