package view

import (
	"net/netip"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/nat"
)

func TestNATStatus(t *testing.T) {
	mp := netip.MustParsePrefix
	p := &config.Peering{Name: "a", NAT: &config.NAT{
		Ingress: []config.NATRule{{Internal: mp("10.1.0.0/16"), External: mp("100.65.0.0/16")}},
		Egress:  []config.NATRule{{Internal: mp("10.9.0.0/16"), External: mp("100.99.0.0/16")}},
	}}
	if natStatus(&config.Peering{Name: "plain"}, nil) != nil {
		t.Fatal("status for a peering without rules")
	}
	st := natStatus(p, nil)
	if len(st.Rules) != 2 || st.Rules[0].Rule != "ingress[0]" || st.Rules[1].Rule != "egress[0]" || st.Rules[1].External != mp("100.99.0.0/16") || st.Rules[0].Out.Packets != 0 {
		t.Fatalf("without a tunnel: %+v", st)
	}
	stats := dataplane.NATStats{
		Outbound: dataplane.NATCounts{Packets: 5, Bytes: 500}, Inbound: dataplane.NATCounts{Packets: 4, Bytes: 400},
		DroppedInbound: dataplane.NATDrops{Ambiguous: 2},
		Rules: []dataplane.NATRuleStats{
			{List: nat.Egress, Index: 0, Rule: nat.Rule{Internal: mp("10.9.0.0/16"), External: mp("100.99.0.0/16")}, Outbound: dataplane.NATCounts{Packets: 3, Bytes: 300}},
			// a rule the config no longer has (reload under way) is not shown
			{List: nat.Ingress, Index: 0, Rule: nat.Rule{Internal: mp("10.1.0.0/16"), External: mp("100.66.0.0/16")}, Inbound: dataplane.NATCounts{Packets: 9}},
		},
	}
	st = natStatus(p, &stats)
	if st.Out.Packets != 5 || st.In.Bytes != 400 || st.DroppedIn["ambiguous"] != 2 || st.DroppedOut != nil {
		t.Errorf("totals %+v", st)
	}
	if st.Rules[1].Out.Packets != 3 || st.Rules[1].Out.Bytes != 300 || st.Rules[0].In.Packets != 0 {
		t.Errorf("rules %+v", st.Rules)
	}
}
