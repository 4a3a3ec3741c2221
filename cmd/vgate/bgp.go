package main

import (
	"fmt"
	"io"
	"strconv"
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
			if p.Idle {
				s += " (idle)"
			}
		}
		switch {
		case p.Draining && p.Avoiding:
			s += ", draining: routed around"
		case p.Draining:
			s += ", draining: no other path"
		case p.Avoids:
			s += ", routes around this gateway"
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
		fmt.Fprintf(tw, "%s\t%s\tAS%d\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s\t%s\n",
			n.Name, n.Address, n.ASN, n.State, up, n.Received, n.Accepted, rejectedText(uint64(n.Rejected), n.RejectedTotal), n.Advertised, n.MaxPrefixes, pr, reason)
	}
	tw.Flush()
	probes := map[string]api.ProbeStatus{}
	for _, p := range st.Probes {
		probes[p.Peering] = p
	}
	bfds := map[string]api.BFDStatus{}
	for _, f := range st.BFD {
		bfds[f.Peering] = f
	}
	for _, n := range st.Neighbors {
		if line := lastBGPError(&n, now); line != "" {
			fmt.Fprintf(w, "%s: %s\n", n.Name, line)
		}
		for _, line := range asMismatch(st.ASN, &n, probes[n.Name]) {
			fmt.Fprintf(w, "%s: %s\n", n.Name, line)
		}
		if f, ok := bfds[n.Name]; ok {
			fmt.Fprintf(w, "%s: %s\n", n.Name, bfdLine(&f, now))
		}
		if n.Recoveries > 0 {
			fmt.Fprintf(w, "%s: started afresh %d time(s) by the session watchdog (not established for 30s while its tunnel answered)\n", n.Name, n.Recoveries)
		}
	}
}

// asMismatch compares what a vgate peer's probes say of the two ASes
// with this gateway's config: each side of a wrong asn sees it, whichever
// side GoBGP reports the bad peer AS on (if any).
func asMismatch(local uint32, n *api.NeighborStatus, p api.ProbeStatus) []string {
	var out []string
	if p.PeerASN != 0 && p.PeerASN != n.ASN {
		out = append(out, fmt.Sprintf("AS mismatch: the peer (vgate) says it is AS%d; this peering's bgp.asn is %d", p.PeerASN, n.ASN))
	}
	if p.PeerExpects != 0 && p.PeerExpects != local {
		out = append(out, fmt.Sprintf("AS mismatch: the peer (vgate) expects AS%d of this gateway, which is AS%d (bgp.asn): fix the peer's peering bgp.asn", p.PeerExpects, local))
	}
	return out
}

// lastBGPError is one line on why a session is not up, or last went down:
// the down code, when, and the last NOTIFICATION sent or received with its
// text (e.g. "open message error: bad peer AS"). "" when there is nothing
// to say. When vgate has scheduled the next attempt to start the session
// afresh, it says when ("next attempt in 0.4s"); a passive end (the peer
// dials) says so.
func lastBGPError(n *api.NeighborStatus, now time.Time) string {
	var parts []string
	code := n.DownCode
	if code == api.SessionDownNone && n.State != api.SessionEstablished {
		code = n.LastDownCode
	}
	switch {
	case code != api.SessionDownNone && n.State != api.SessionEstablished:
		parts = append(parts, "down: "+string(code))
	case n.LastDownCode != api.SessionDownNone:
		parts = append(parts, "last down: "+string(n.LastDownCode))
	}
	if len(parts) > 0 && !n.LastDownAt.IsZero() {
		parts[0] += " " + ago(now, n.LastDownAt)
	}
	if nt := n.Notification; nt != nil {
		text := nt.Text
		if text == "" {
			text = fmt.Sprintf("code %d subcode %d", nt.Code, nt.Subcode)
		}
		s := fmt.Sprintf("last NOTIFICATION %s: %s", nt.Direction, text)
		if !nt.At.IsZero() {
			s += " " + ago(now, nt.At)
		}
		parts = append(parts, s)
	}
	if n.State != api.SessionEstablished && len(parts) > 0 {
		switch {
		case !n.NextAttempt.IsZero():
			parts = append(parts, fmt.Sprintf("next attempt in %v", max(n.NextAttempt.Sub(now), 0).Round(100*time.Millisecond)))
		case n.Passive && n.Down == "":
			parts = append(parts, "waiting for the peer to connect (it dials: higher tunnel address)")
		case n.Down == "":
			parts = append(parts, "connecting (retry every 1s)")
		}
	}
	return strings.Join(parts, "; ")
}

// ago is "(12s ago, 07:40:01Z)" for t seen at now.
func ago(now, t time.Time) string {
	d := max(now.Sub(t), 0).Round(time.Second)
	return fmt.Sprintf("(%v ago, %s)", d, t.UTC().Format("15:04:05Z"))
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

// rejectedText is the REJECTED column: the routes rejected now, and the
// announcements rejected since start when that says more ("0 (15 total)").
func rejectedText(now, total uint64) string {
	if total <= now {
		return strconv.FormatUint(now, 10)
	}
	return fmt.Sprintf("%d (%d total)", now, total)
}

// bfdLine describes a peering's BFD session: state, timers both ways,
// detection time, diagnostics and the last down.
func bfdLine(f *api.BFDStatus, now time.Time) string {
	s := fmt.Sprintf("bfd %s (%v × %d", f.State, f.Interval, f.Multiplier)
	if f.RemoteMultiplier > 0 {
		s += fmt.Sprintf("; peer %v × %d, asks ≥ %v", f.RemoteDesiredTx, f.RemoteMultiplier, f.RemoteMinRx)
	}
	s += fmt.Sprintf("; sending every %v", f.TxInterval)
	if f.Detect > 0 {
		s += fmt.Sprintf(", detect %v", f.Detect)
	}
	s += ")"
	if f.State != "up" && f.LocalDiag != "none" {
		s += ", diagnostic " + f.LocalDiag
	}
	if f.RemoteDiag != "none" && f.RemoteDiag != "" {
		s += ", peer's diagnostic " + f.RemoteDiag
	}
	if f.PeerAdminDown {
		s += ", the peer took it administratively down (not a failure: the session is not held)"
	}
	if !f.LastDown.IsZero() {
		s += fmt.Sprintf(", down %d time(s), last %v ago", f.Downs, now.Sub(f.LastDown).Round(time.Second))
	}
	if !f.EverUp {
		s += "; never up: is BFD configured on the router for " + f.Address.String() + "?"
	}
	return s
}
