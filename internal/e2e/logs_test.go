package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// What an operator reads while a local firewall blocks a BGP peering's
// underlay for 60 s (an nftables rule in gw1's namespace drops UDP to and
// from the listen port, so gw1's sends fail with EPERM):
//
//	h1 ── gw1 (nft: UDP 51820 dropped) ═══ gw2 ── h2
//
// The log (at the default level, info) has at most 10 lines per peering
// for the whole block: wireguard-go's per-packet "Failed to send …
// operation not permitted" is not there. Filtered to warnings, it still
// shows every tunnel-down. Status (API, text and metrics) names the
// lowest failing layer: on gw1 send_blocked with a hint naming the
// destination, on gw2 probe_dead then handshake_unanswered; never
// bgp_down, and GoBGP's "admin-down" wording appears nowhere. Lifting the
// block brings both back up, and the log says so at info.
func TestLogsUnderlayBlocked(t *testing.T) {
	t.Parallel()
	lab, gws := site(t, 2)
	gw1, gw2 := gws[0], gws[1]
	netlab.LinkBGP(gw1, gw2)
	for _, g := range gws {
		g.MetricsListen = metricsAddr
	}
	// gw2 logs at info, as vgate run does by default; gw1 at debug, to see
	// wireguard-go's refused sends limited (its info view is the lines
	// above debug).
	gw1.LogLevel, gw2.LogLevel = "debug", "info"
	start(t, gw1, gw2)
	sides := []struct {
		g    *netlab.Gateway
		peer string
	}{{gw1, "net2"}, {gw2, "net1"}}
	for _, s := range sides {
		waitFor(t, s.g.Name+": session established", 30*time.Second, func() (bool, string) {
			n, ok := established(t, s.g, s.peer)
			return ok, fmt.Sprintf("%+v", n)
		})
		waitPeering(t, s.g, s.peer, api.StateUp, "", 10*time.Second)
	}
	marks := map[string]int{gw1.Name: len(gw1.Log()), gw2.Name: len(gw2.Log())}

	const block = 60 * time.Second
	undo, err := lab.CutUDP(gw1.Net.GatewayNS, 51820)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	// Every reason status gave, in order (repeats folded).
	seen := map[string][]api.DownReason{}
	var blockedHint string
	for time.Since(t0) < block {
		for _, s := range sides {
			p, _, err := peeringOf(t, s.g, s.peer)
			if err != nil {
				t.Fatal(err)
			}
			r := seen[s.g.Name]
			if p.State != api.StateUp && (len(r) == 0 || r[len(r)-1] != p.Reason) {
				seen[s.g.Name] = append(r, p.Reason)
				t.Logf("%5.1fs %s: %s %s: %s", time.Since(t0).Seconds(), s.g.Name, p.State, p.Reason, p.Hint)
			}
			if s.g == gw1 && p.Reason == api.ReasonSendBlocked && blockedHint == "" {
				blockedHint = p.Hint
				checkDownMetrics(t, gw1, "net2", api.ReasonSendBlocked)
				if v := mustMetric(t, metricsOf(t, gw1), "vgate_peering_send_refused_packets_total", "peering=net2"); v == 0 {
					t.Errorf("gw1: vgate_peering_send_refused_packets_total{peering=net2} = 0 while sends are refused")
				}
				out, err := gw1.CLI("status", "--socket", gw1.Socket)
				if err != nil || !strings.Contains(out, "down (send blocked)") || !strings.Contains(out, "the local firewall refuses UDP to ") {
					t.Errorf("gw1: vgate status (%v):\n%s", err, out)
				}
				out, err = gw1.CLI("status", "--socket", gw1.Socket, "--json")
				var st api.Status
				if err == nil {
					err = json.Unmarshal([]byte(out), &st)
				}
				if err != nil || len(st.Peerings) != 1 || st.Peerings[0].Reason != api.ReasonSendBlocked ||
					len(st.Port.Devices) != 1 || st.Port.Devices[0].SendRefused == 0 || st.Port.Devices[0].SendBlockedSince.IsZero() {
					t.Errorf("gw1: vgate status --json (%v): %+v", err, st)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	logs := map[string]string{gw1.Name: gw1.Log()[marks[gw1.Name]:], gw2.Name: gw2.Log()[marks[gw2.Name]:]}
	if err := undo(); err != nil {
		t.Fatal(err)
	}

	for _, s := range sides {
		reasons := seen[s.g.Name]
		if len(reasons) == 0 {
			t.Errorf("%s: never down during a %v block", s.g.Name, block)
			continue
		}
		for _, r := range reasons {
			if r == api.ReasonBGPDown {
				t.Errorf("%s: status said %s during the block (reasons %v): the lowest failing layer is not BGP", s.g.Name, r, reasons)
			}
		}
	}
	if r := seen[gw1.Name]; len(r) == 0 || r[0] != api.ReasonSendBlocked {
		t.Errorf("gw1: reasons %v, want send_blocked first", r)
	}
	if !strings.Contains(blockedHint, "the local firewall refuses UDP to "+gw2.Net.GatewayUnderlay.String()+":51820") {
		t.Errorf("gw1: send_blocked hint %q does not name gw2's endpoint", blockedHint)
	}
	if r := seen[gw2.Name]; len(r) == 0 || (r[0] != api.ReasonProbeDead && r[0] != api.ReasonHandshakeUnanswered) {
		t.Errorf("gw2: reasons %v, want probe_dead or handshake_unanswered first", r)
	}

	// At debug, wireguard-go's per-packet line is limited: the burst, then
	// one line with the count when its minute ends.
	var summary string
	waitFor(t, "gw1: the refused sends' count", 15*time.Second, func() (bool, string) {
		for _, l := range strings.Split(gw1.Log()[marks[gw1.Name]:], "\n") {
			if strings.Contains(l, "Failed to send data packets") && strings.Contains(l, "more in the last 60 s)") {
				summary = l
				return true, l
			}
		}
		return false, "no line yet"
	})
	t.Logf("gw1 at debug: %s", summary)
	if n := countLines(gw1.Log()[marks[gw1.Name]:], "Failed to send data packets"); n > 5+2 {
		t.Errorf("gw1: %d lines of Failed to send data packets at debug, want at most 7", n)
	}

	for _, s := range sides {
		var lines []string // what an info log has
		for _, l := range strings.Split(strings.TrimRight(logs[s.g.Name], "\n"), "\n") {
			if !strings.Contains(l, "level=DEBUG") {
				lines = append(lines, l)
			}
		}
		log := strings.Join(lines, "\n")
		t.Logf("%s: %d log lines at info in the %v block:\n%s", s.g.Name, len(lines), block, log)
		// One peering per gateway: every line counts against it.
		if len(lines) > 10 {
			t.Errorf("%s: %d log lines during the block, want at most 10", s.g.Name, len(lines))
		}
		if strings.Contains(log, "Failed to send") {
			t.Errorf("%s: wireguard-go's refused sends reached the info log", s.g.Name)
		}
		if strings.Contains(log, "admin-down") {
			t.Errorf("%s: GoBGP's admin-down wording in the log", s.g.Name)
		}
		// journalctl -p warning: every tunnel-down is there, and the
		// status reasons each have theirs.
		var warns []string
		downs := 0
		for _, l := range lines {
			if strings.Contains(l, `msg="tunnel down"`) {
				downs++
				if !strings.Contains(l, "level=WARN") {
					t.Errorf("%s: tunnel down below warn: %s", s.g.Name, l)
				}
			}
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
				warns = append(warns, l)
			}
		}
		for _, r := range seen[s.g.Name] {
			if countLines(strings.Join(warns, "\n"), `msg="tunnel down"`, "reason="+string(r)) == 0 {
				t.Errorf("%s: status said %s but no warning says tunnel down for it:\n%s", s.g.Name, r, strings.Join(warns, "\n"))
			}
		}
		if downs == 0 {
			t.Errorf("%s: no tunnel-down line", s.g.Name)
		}
		if out, err := s.g.CLI("bgp", "--socket", s.g.Socket); err != nil || strings.Contains(out, "admin-down") {
			t.Errorf("%s: vgate bgp (%v):\n%s", s.g.Name, err, out)
		}
	}

	// Lifted: both up again, said at info.
	for _, s := range sides {
		waitPeering(t, s.g, s.peer, api.StateUp, "", 60*time.Second)
		waitFor(t, s.g.Name+": tunnel up logged", 5*time.Second, func() (bool, string) {
			after := s.g.Log()[marks[s.g.Name]:]
			return countLines(after, "level=INFO", `msg="tunnel up"`, "peering="+s.peer) > 0, tail(after, 5)
		})
	}
}
