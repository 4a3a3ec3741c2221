package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// What the gateway and a laptop say about each other, read as the user
// reads it (client list, status, vgate connect's output):
//
//	lt1 alice (vgate connect)
//	     |
//	  198.18.0.0/24 underlay bridge   (cut between gw1 and lt1 for a while)
//	     |
//	gw1 (vgate, P2S on :51821, pool 172.16.201.0/24)
//	     |
//	h1 10.1.0.2
//
// While the bridge drops everything between gw1 and lt1, vgate connect
// says within 10 s that the gateway stopped answering, and that it answers
// again once the cut is undone. On SIGTERM vgate connect exits promptly;
// the departed laptop is no longer `active` in `client list` within 30 s,
// and `status` counts it no more as connected. Back and then revoked, the
// laptop says within 10 s that the gateway stopped answering.
const p2sStatesExtra = `point_to_site:
  listen_port: 51821
  endpoint: 198.18.0.1:51821
  address_pool: [172.16.201.0/24]
  max_clients: 4
  groups:
    - name: devs
      allow: [10.1.0.0/16]
`

func TestP2SStates(t *testing.T) {
	lab, gws := site(t, 1)
	g1 := gws[0]
	n1 := lab.Network(1)
	g1.Extra = p2sStatesExtra
	start(t, g1)

	conf, err := g1.CLI("client", "add", "alice", "--group", "devs", "--socket", g1.Socket)
	if err != nil {
		t.Fatalf("client add: %v\n%s", err, conf)
	}
	path := lab.Path("alice.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	lt, err := lab.AddLaptop(1)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := lt.Connect(vgateBin(t), path)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop()
	if err := lab.WaitPing(lt.NS, n1.HostAddr, 20*time.Second); err != nil {
		t.Fatalf("alice cannot reach h1: %v\n%s", err, proc.LogTail(20))
	}
	// waitLog waits for a line of vgate connect's output containing s and
	// returns how long that took.
	waitLog := func(s string, since int, limit time.Duration) time.Duration {
		t.Helper()
		t0 := time.Now()
		for time.Since(t0) < limit+20*time.Second {
			b, _ := os.ReadFile(proc.LogPath)
			if strings.Contains(string(b[min(since, len(b)):]), s) {
				return time.Since(t0)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("vgate connect never said %q:\n%s", s, proc.LogTail(20))
		return 0
	}
	logLen := func() int { b, _ := os.ReadFile(proc.LogPath); return len(b) }
	waitLog("connected: handshake with the gateway completed", 0, 10*time.Second)

	row := func() string {
		t.Helper()
		out, err := g1.CLI("client", "list", "--socket", g1.Socket)
		if err != nil {
			t.Fatalf("client list: %v\n%s", err, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "alice ") {
				return l
			}
		}
		t.Fatalf("client list has no alice:\n%s", out)
		return ""
	}
	statusText := func() string {
		t.Helper()
		out, err := g1.CLI("status", "--socket", g1.Socket)
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		return out
	}
	if r := row(); !strings.Contains(r, " active ") {
		t.Fatalf("a laptop that just pinged is not active:\n%s", r)
	}
	if s := statusText(); !strings.Contains(s, "1 connected") {
		t.Fatalf("status does not count the active laptop:\n%s", s)
	}

	// The gateway goes silent for the laptop (and the laptop for it).
	mark := logLen()
	undo, err := lab.CutBetween(n1.GatewayUnderlay, lt.Underlay)
	if err != nil {
		t.Fatal(err)
	}
	took := waitLog("the gateway stopped answering", mark, 10*time.Second)
	t.Logf("vgate connect said the gateway stopped answering %v after the cut", took.Round(100*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("vgate connect took %v to say the gateway went silent, want within 10 s", took)
	}
	mark = logLen()
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	took = waitLog("the gateway answers again", mark, 10*time.Second)
	t.Logf("vgate connect said the gateway answers again %v after the cut ended", took.Round(100*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("vgate connect took %v to say the gateway answers again, want within 10 s", took)
	}
	if err := lab.WaitPing(lt.NS, n1.HostAddr, 20*time.Second); err != nil {
		t.Fatalf("alice cannot reach h1 after the cut: %v", err)
	}

	// The laptop leaves: SIGTERM, and vgate connect exits promptly.
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	left := time.Now()
	select {
	case <-proc.Done():
	case <-time.After(8 * time.Second):
		t.Fatalf("vgate connect still runs 8 s after SIGTERM:\n%s", proc.LogTail(20))
	}
	t.Logf("vgate connect exited %v after the signal", time.Since(left).Round(10*time.Millisecond))
	if !strings.Contains(proc.LogTail(5), "removed") {
		t.Errorf("vgate connect did not say it removed its interface:\n%s", proc.LogTail(5))
	}
	var r string
	for {
		r = row()
		if !strings.Contains(r, " active ") {
			break
		}
		if time.Since(left) > 40*time.Second {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	gone := time.Since(left)
	t.Logf("client list: alice not active %v after she left: %s", gone.Round(100*time.Millisecond), r)
	if gone > 30*time.Second {
		t.Errorf("client list still shows the departed laptop active after %v, want within 30 s:\n%s", gone, r)
	}
	if !strings.Contains(r, "idle since ") {
		t.Errorf("a laptop gone for under 3 minutes should read \"idle since ...\":\n%s", r)
	}
	if s := statusText(); !strings.Contains(s, "0 connected") {
		t.Errorf("status still counts the departed laptop:\n%s", s)
	}

	// alice comes back and is revoked: her laptop says so within 10 s
	// instead of still reading "connected".
	mark = logLen() // the log file is appended to
	proc, err = lt.Connect(vgateBin(t), path)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop()
	waitLog("connected: handshake with the gateway completed", mark, 10*time.Second)
	mark = logLen()
	if out, err := g1.CLI("client", "revoke", "alice", "--socket", g1.Socket); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	took = waitLog("the gateway stopped answering", mark, 10*time.Second)
	t.Logf("vgate connect said the gateway stopped answering %v after the revocation", took.Round(100*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("vgate connect took %v to notice the revocation, want within 10 s", took)
	}
}
