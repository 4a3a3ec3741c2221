package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/control"
)

func cmdBGP(args []string, stdout, stderr io.Writer) error {
	return query("bgp", args, stdout, stderr, (*control.Client).BGP, func(w io.Writer, st api.BGPStatus) {
		printBGP(w, &st, time.Now())
	})
}

func printBGP(w io.Writer, st *api.BGPStatus, now time.Time) {
	if !st.Enabled {
		fmt.Fprintln(w, "bgp: off (no bgp section in the config)")
		return
	}
	fmt.Fprintf(w, "bgp AS%d, router id %s, %d neighbor(s)\n", st.ASN, st.RouterID, len(st.Neighbors))
	probe := map[string]string{}
	for _, p := range st.Probes {
		s := "dead"
		if p.Alive {
			s = fmt.Sprintf("alive %v", p.RTT.Round(100*time.Microsecond))
		}
		probe[p.Peering] = s
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEERING\tADDRESS\tASN\tSTATE\tUP FOR\tRECEIVED\tACCEPTED\tREJECTED\tADVERTISED\tMAX\tPROBE\tDOWN REASON")
	for _, n := range st.Neighbors {
		up := "-"
		if !n.Since.IsZero() {
			up = now.Sub(n.Since).Round(time.Second).String()
		}
		reason := n.Down
		if reason == "" && n.State != api.SessionEstablished {
			reason = n.LastDown
		}
		if reason != "" && n.Down != "" {
			reason = "held down: " + reason
		}
		if reason == "" {
			reason = "-"
		}
		pr := probe[n.Name]
		if pr == "" {
			pr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\tAS%d\t%s\t%s\t%d\t%d\t%d (%d total)\t%d\t%d\t%s\t%s\n",
			n.Name, n.Address, n.ASN, n.State, up, n.Received, n.Accepted, n.Rejected, n.RejectedTotal, n.Advertised, n.MaxPrefixes, pr, reason)
	}
	tw.Flush()
}

func asPath(p []uint32) string {
	if len(p) == 0 {
		return "-"
	}
	s := make([]string, len(p))
	for i, a := range p {
		s[i] = fmt.Sprint(a)
	}
	return strings.Join(s, " ")
}
