package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/control"
)

func cmdRoutes(args []string, stdout, stderr io.Writer) error {
	return query("routes", args, stdout, stderr, (*control.Client).Routes, printRoutes)
}

func printRoutes(w io.Writer, v api.RoutesView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tSOURCE\tPEERING\tAS PATH\tSTATUS")
	for _, r := range v.Routes {
		// One line per path: a multipath route has a line for each of its
		// peerings, each naming its own (Peerings, the whole set, is in --json).
		peering := r.Peering
		if peering == "" && len(r.Peerings) > 0 {
			peering = strings.Join(r.Peerings, ",")
		}
		if peering == "" {
			peering = "-"
		}
		prefix := r.Prefix.String()
		if r.PeerPrefix.IsValid() { // NAT: as the peer numbers it, beside
			prefix = fmt.Sprintf("%s (%s at %s)", r.Prefix, r.PeerPrefix, peering)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", prefix, r.Source, peering, asPath(r.ASPath), r.Status)
	}
	tw.Flush()
}
