package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vgate-project/vgate/gateway"
)

func cmdRoutes(args []string, stdout io.Writer) error {
	return getJSON("routes", args, stdout, "/v1/routes", printRoutes)
}

func printRoutes(w io.Writer, v *gateway.RoutesView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tSOURCE\tPEERING\tAS PATH\tSTATUS")
	for _, r := range v.Routes {
		peering := r.Peering
		if len(r.Peerings) > 0 {
			peering = strings.Join(r.Peerings, ",")
		}
		if peering == "" {
			peering = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Prefix, r.Source, peering, asPath(r.ASPath), r.Status)
	}
	tw.Flush()
}
