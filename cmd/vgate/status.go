package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/control"
	"github.com/vgate-project/vgate/overlap"
)

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	return query("status", args, stdout, stderr, (*control.Client).Status, func(w io.Writer, st api.Status) {
		printStatus(w, &st, time.Now())
	})
}

func cmdReload(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reload", stderr)
	gf := addGatewayFlags(fs, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	c, ctx, cancel, err := gf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	if err := c.Reload(ctx); err != nil {
		if errors.Is(err, api.CodeReloadFailed) {
			return fmt.Errorf("reload rejected, the gateway keeps its previous config:\n%w", err)
		}
		return gf.explain(err)
	}
	fmt.Fprintln(stdout, "reloaded")
	return nil
}

func printStatus(w io.Writer, st *api.Status, now time.Time) {
	fmt.Fprintf(w, "gateway %s   up %s   public key %s\n", st.Name, humanAge(now.Sub(st.Started)), st.PublicKey)
	fmt.Fprintf(w, "  address spaces  %s\n", prefixes(st.AddressSpaces))
	fmt.Fprintf(w, "  tunnel address  %s   listen port %d/udp\n", st.TunnelAddress, st.ListenPort)
	fmt.Fprintf(w, "  tunnels         %d configured, %d up, limit %d\n", st.Tunnels.Used, st.Tunnels.Up, st.Tunnels.Limit)
	r := fmt.Sprintf("%d ok, %d failed", st.Reloads.OK, st.Reloads.Failed)
	if st.Reloads.LastError != "" {
		r += " (last: " + firstLine(st.Reloads.LastError) + ")"
	}
	fmt.Fprintf(w, "  reloads         %s\n", r)
	if st.Drain != nil {
		fmt.Fprintf(w, "  drain           %s (since %s)\n", drainText(st.Drain), humanAge(now.Sub(st.Drain.Since))) // drain.go
	}
	fmt.Fprintf(w, "  ip forwarding   %s\n", forwardingText(st.Forwarding.IPv4, st.Forwarding.IPv6)) // check.go
	if d := portDrops(st.Port); d != "" {                                                            // status_ops.go
		fmt.Fprintf(w, "  port drops      %s\n", d)
	}
	if s := p2sLine(st.P2S); s != "" { // client.go
		fmt.Fprintf(w, "  point-to-site   %s\n", s)
		if q := st.P2S.Queue; q != nil {
			fmt.Fprintf(w, "                  %s\n", queueText(q))
		}
	}
	if d := st.DNS; d != nil {
		fmt.Fprintf(w, "  dns             zone %s on %s:53, %s\n", d.Zone, d.Address, countsText(d.Queries, api.DNSOutcomes, d.QueriesLastMinute, "answer", "forwarded", "nxdomain"))
	}
	if e := st.Enroll; e != nil {
		fmt.Fprintf(w, "  enrollment      %s (listen %s, certificate %s), %d invites pending, attempts: %s\n", e.URL, e.Listen, e.Pin, e.Pending, countsText(e.Attempts, api.EnrollResults, e.AttemptsLastMinute, "enrolled"))
	}
	if len(st.Peerings) == 0 {
		fmt.Fprintln(w, "\nno peerings configured")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEERING\tNETWORK\tTYPE\tSTATE\tENDPOINT\tHANDSHAKE\tRX\tTX\tADDRESS SPACES")
	for _, p := range st.Peerings {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = humanAge(now.Sub(p.LastHandshake)) + " ago"
		}
		ep := p.Endpoint
		if ep == "" {
			ep = "-"
		}
		state := stateText(p) // status_ops.go
		if p.Error != "" {
			state += " (" + p.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Network, typeText(p), state, ep, hs,
			humanBytes(p.RxBytes), humanBytes(p.TxBytes), prefixes(p.AddressSpaces))
	}
	tw.Flush()
	for _, p := range st.Peerings {
		if p.Hint != "" {
			fmt.Fprintf(w, "%s: %s\n", p.Name, p.Hint)
		}
		if r := p.Relay; r != nil && (p.Path == "relay" || r.State != "connected") {
			line := fmt.Sprintf("%s: relay %s %s", p.Name, r.URL, r.State)
			if r.Error != "" {
				line += ": " + r.Error
			}
			fmt.Fprintln(w, line)
		}
		if !p.EndpointMoved.IsZero() {
			fmt.Fprintf(w, "%s: endpoint moved %s ago (was %s); the tunnel follows its DNS name\n", p.Name, humanAge(now.Sub(p.EndpointMoved)), p.EndpointPrevious)
		}
		if x := p.IPsec; x != nil {
			fmt.Fprintf(w, "%s: ipsec (esp: %s), IKE SA %s, child SA %s, rekeys: IKE %d, child %d\n", p.Name, x.ESPModeText,
				orDash(x.IKEState), orDash(x.ChildState), x.IKERekeys, x.ChildRekeys)
		}
		if q := p.Queue; q != nil {
			fmt.Fprintf(w, "%s: %s\n", p.Name, queueText(q))
		}
		if p.DroppedSource > 0 {
			fmt.Fprintf(w, "%s: %d packet(s) from the peer dropped since start%s: source not in its allowed IPs (its static routes, tunnel address and accepted BGP routes)\n",
				p.Name, p.DroppedSource, lastMinute(p.DroppedSourceLastMinute))
		}
		printNATStatus(w, p) // nat.go
	}
}

// queueText is a tunnel's queue management in one line.
func queueText(q *api.QueueStatus) string {
	recv := ""
	if q.RecvBudget > 0 {
		recv = fmt.Sprintf(", %d/%d received", q.RecvInFlight, q.RecvBudget)
	}
	s := fmt.Sprintf("queue %s (vgate's, send side): %d queued, in flight %d/%d sent%s; CoDel dropped %d, marked CE %d, overflow %d",
		q.Discipline, q.Queued, q.SendInFlight, q.SendBudget, recv, q.DroppedCoDel, q.MarkedCE, q.DroppedLimit)
	if q.Qdisc != "" {
		s += "; interface qdisc " + q.Qdisc + " (a TUN holds no backlog in it)"
	}
	return s
}

// typeText is a peering's kind; for IPsec with where ESP runs.
func typeText(p api.PeeringStatus) string {
	switch {
	case p.IPsec != nil:
		return "ipsec (esp: " + p.IPsec.ESPModeText + ")"
	case p.Type == "":
		return "wireguard"
	}
	return string(p.Type)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func prefixes(ps []netip.Prefix) string {
	return cmp.Or(overlap.Join(ps), "-")
}

func humanAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// countsText is "a 3, b 1" for the non-zero counts in order, or "none";
// each but the plain ones gets its last minute where recent tells it
// ("refused 3 (1 in the last minute)").
func countsText(m map[string]uint64, order []string, recent map[string]uint64, plain ...string) string {
	var parts []string
	for _, k := range order {
		if m[k] > 0 {
			s := fmt.Sprintf("%s %d", k, m[k])
			if n, ok := recent[k]; ok && !slices.Contains(plain, k) {
				s += lastMinute(&n)
			}
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
