package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// TestChaosHubOfHubs: whatever happens, a session whose tunnel works is
// established again within a bound. 21 gateways in a hub-of-hubs
// (netlab.HubOfHubs: a core, 5 hubs, 15 spokes, all BGP) converge; then,
// for VGATE_CHAOS_DURATION (default 90 s), random faults, up to five at
// a time; a gateway takes one fault to its process (kill, stop, reload)
// and one to its network (cut, loss) at a time, which may overlap:
//
//   - kill: SIGKILL, down 0.5-4 s, started again;
//   - stop: SIGSTOP for 1-12 s, then SIGCONT (a starved host);
//   - cut: a tree link's tunnel cut on the underlay bridge for 1-12 s;
//   - loss: 10-30 % of a gateway's UDP in and out dropped for 4-15 s;
//   - reload: two spokes under different hubs get a peering to each
//     other (both reload) and lose it 4-12 s later, or a spoke and its hub
//     lose theirs and get it back 1-6 s later;
//   - hog: a busy loop (one core; two at most at a time) for 4-12 s,
//     ended by its PID.
//
// After the last fault ends: every gateway has every other site's network
// within 30 s, every session is established, and no gateway has more
// descriptors or goroutines than before the faults (beyond a small slack
// for what comes and goes), nor a BGP socket that is not a session's.
// The schedule is drawn from a seed, printed first: VGATE_CHAOS_SEED
// replays it. On failure: `vgate bgp`, `vgate status`, the BGP sockets
// (ss) and the log tail of the gateways concerned and their uplinks.
// Figures (faults by kind, watchdog recoveries, time back) are logged.
func TestChaosHubOfHubs(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("VGATE_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("VGATE_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	dur := 90 * time.Second
	if s := os.Getenv("VGATE_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("VGATE_CHAOS_DURATION=%q: want a duration like 90s", s)
		}
		dur = d
	}
	t.Logf("chaos seed %d (replay: VGATE_CHAOS_SEED=%d), faults for %v; load average %s", seed, seed, dur, netlab.LoadAvg())

	lab := netlab.NewT(t)
	ctx := t.Context()
	const n = 21
	sites, hubs := netlab.HubOfHubs(n)
	if err := lab.BuildHubOfHubs(ctx, vgateBin(t), sites); err != nil {
		t.Fatal(err)
	}
	for _, s := range sites {
		s.GW.LogLevel = "info"
		s.GW.Pprof = lab.Path(fmt.Sprintf("s%d-pprof.sock", s.Index))
		// One segment per packet on the wire, so that loss is per packet
		// (WireGuard sends UDP GSO batches).
		if out, err := lab.Run(s.GW.Net.GatewayNS, "ip", "link", "set", "dev", "wan0", "gso_max_segs", "1"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	c := &chaos{t: t, lab: lab, sites: sites}
	t.Cleanup(func() {
		// A stopped gateway would hold up the lab's SIGTERM.
		for _, s := range sites {
			if p := s.GW.Proc(); p != nil {
				_ = p.Signal(syscall.SIGCONT)
			}
		}
		if t.Failed() {
			t.Logf("faults:\n%s", c.faultLog())
		}
	})
	t0 := time.Now()
	for _, s := range sites {
		if err := s.GW.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if missing := c.waitRoutes(3 * time.Minute); len(missing) > 0 {
		c.dump(missing)
		t.Fatalf("the lab did not converge within 3m: %s", c.describe(missing))
	}
	t.Logf("FIGURE %d gateways (%d hubs) started and converged in %v", n, hubs, time.Since(t0).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second) // the sessions' first seconds (resends, probe timing) settle
	before := c.measure()

	plan := chaosSchedule(seed, dur, sites)
	kinds := map[string]int{}
	for _, f := range plan {
		kinds[f.kind]++
	}
	t.Logf("FIGURE %d faults over %v: %v", len(plan), dur, kinds)
	c.run(plan)
	end := time.Now()
	if t.Failed() {
		return
	}

	// Back: every network everywhere, every session established.
	missing := c.waitRoutes(30 * time.Second)
	back := time.Since(end)
	if len(missing) > 0 {
		c.dump(missing)
		t.Fatalf("30s after the last fault, gateways lack networks: %s", c.describe(missing))
	}
	var stuck []int
	for _, s := range sites {
		st, err := s.GW.BGP()
		if err != nil {
			t.Errorf("site %d: %v", s.Index, err)
			continue
		}
		for _, nb := range st.Neighbors {
			if nb.State != api.SessionEstablished {
				stuck = append(stuck, s.Index)
				t.Errorf("site %d: session %s %s after the faults (%s)", s.Index, nb.Name, nb.State, nb.LastDown)
			}
		}
	}
	if len(stuck) > 0 {
		c.dump(stuck)
		t.FailNow()
	}
	t.Logf("FIGURE every network back everywhere %v after the last fault", back.Round(100*time.Millisecond))

	// Nothing left behind.
	time.Sleep(5 * time.Second)
	c.checkGrowth(before)
	recoveries, lines := c.recoveries()
	t.Logf("FIGURE watchdog recoveries: %d counted by the gateways running now, %d logged since the start (kills reset the counters)", recoveries, lines)
}

// chaosFault is one fault of the schedule.
type chaosFault struct {
	kind    string
	at      time.Duration // after the faults begin
	hold    time.Duration
	sites   []int // the sites it holds (kill, stop, loss: one; cut, reload: two; hog: none)
	tenths  int   // loss
	variant string
	ns      int // hog: the namespace it runs in
}

func (f chaosFault) String() string {
	s := fmt.Sprintf("%6.1fs %-6s %4.1fs sites %v", f.at.Seconds(), f.kind, f.hold.Seconds(), f.sites)
	switch f.kind {
	case "loss":
		s += fmt.Sprintf(" %d0%%", f.tenths)
	case "reload":
		s += " " + f.variant
	case "hog":
		s += fmt.Sprintf(" in s%d", f.ns)
	}
	return s
}

// chaosSchedule draws the faults from seed alone (so a seed replays the
// same schedule): a fault starts every 0.5-2 s while fewer than five run
// (two hogs at most), on sites no other fault of its class (process or
// network) holds until 2 s after it.
func chaosSchedule(seed uint64, dur time.Duration, sites []*netlab.HubSite) []chaosFault {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	type hold struct {
		site int
		net  bool
	}
	busy := map[hold]time.Duration{} // until when
	var plan []chaosFault
	free := func(at time.Duration, net bool, idx ...int) bool {
		for _, i := range idx {
			if busy[hold{i, net}] > at {
				return false
			}
		}
		return true
	}
	var spokes []*netlab.HubSite
	for _, s := range sites {
		if s.Role == "spoke" {
			spokes = append(spokes, s)
		}
	}
	kinds := []string{"kill", "kill", "stop", "stop", "cut", "cut", "loss", "loss", "reload", "reload", "hog"}
	for at := 2 * time.Second; at < dur; at += between(500*time.Millisecond, 2*time.Second) {
		running, hogs := 0, 0
		for _, f := range plan {
			if f.at <= at && at < f.at+f.hold {
				running++
				if f.kind == "hog" {
					hogs++
				}
			}
		}
		f := chaosFault{kind: kinds[rng.IntN(len(kinds))], at: at}
		// Draw everything the kind needs first, so that the sequence of
		// draws does not depend on which sites happen to be free.
		site := sites[rng.IntN(len(sites))]
		link := sites[1+rng.IntN(len(sites)-1)] // not the core: it and its uplink
		a, b := spokes[rng.IntN(len(spokes))], spokes[rng.IntN(len(spokes))]
		readd := rng.IntN(2) == 0
		f.tenths = 1 + rng.IntN(3)
		f.ns = 1 + rng.IntN(len(sites))
		switch f.kind {
		case "kill":
			f.hold, f.sites = between(500*time.Millisecond, 4*time.Second), []int{site.Index}
		case "stop":
			f.hold, f.sites = between(time.Second, 12*time.Second), []int{site.Index}
		case "cut":
			f.hold, f.sites = between(time.Second, 12*time.Second), []int{link.Index, link.Up}
		case "loss":
			f.hold, f.sites = between(4*time.Second, 15*time.Second), []int{site.Index}
		case "reload":
			if readd {
				f.variant = "readd uplink"
				f.hold, f.sites = between(time.Second, 6*time.Second), []int{a.Index, a.Up}
			} else {
				f.variant = "cross link"
				f.hold, f.sites = between(4*time.Second, 12*time.Second), []int{a.Index, b.Index}
				if a.Up == b.Up {
					continue
				}
			}
		case "hog":
			f.hold = between(4*time.Second, 12*time.Second)
			if hogs >= 2 {
				continue
			}
		}
		net := f.kind == "cut" || f.kind == "loss"
		if running >= 5 || !free(at, net, f.sites...) || at+f.hold > dur {
			continue
		}
		for _, i := range f.sites {
			busy[hold{i, net}] = at + f.hold + 2*time.Second
		}
		plan = append(plan, f)
	}
	return plan
}

// chaos runs the faults and looks at the lab.
type chaos struct {
	t     *testing.T
	lab   *netlab.Lab
	sites []*netlab.HubSite

	mu   sync.Mutex
	done []string // what ran, for the failure report
}

func (c *chaos) site(i int) *netlab.HubSite { return c.sites[i-1] }

func (c *chaos) faultLog() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.done, "\n")
}

// run runs the schedule, each fault on its own goroutine, and returns
// when every fault has been undone.
func (c *chaos) run(plan []chaosFault) {
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, f := range plan {
		wg.Go(func() {
			time.Sleep(time.Until(t0.Add(f.at)))
			if err := c.apply(f); err != nil {
				c.t.Errorf("fault %s: %v", f, err)
			}
			c.mu.Lock()
			c.done = append(c.done, f.String())
			c.mu.Unlock()
		})
	}
	wg.Wait()
}

// apply makes fault f, holds it, and undoes it.
func (c *chaos) apply(f chaosFault) error {
	switch f.kind {
	case "kill":
		g := c.site(f.sites[0]).GW
		if err := g.Kill(); err != nil {
			return err
		}
		time.Sleep(f.hold)
		return g.Start()
	case "stop":
		p := c.site(f.sites[0]).GW.Proc()
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		time.Sleep(f.hold)
		return p.Signal(syscall.SIGCONT)
	case "cut":
		a, b := c.site(f.sites[0]).GW.Net.GatewayUnderlay, c.site(f.sites[1]).GW.Net.GatewayUnderlay
		undo, err := c.lab.CutBetween(a, b)
		if err != nil {
			return err
		}
		time.Sleep(f.hold)
		return undo()
	case "loss":
		undo, err := c.lab.LossOn(c.site(f.sites[0]).GW.Net.GatewayNS, "wan0", f.tenths)
		if err != nil {
			return err
		}
		time.Sleep(f.hold)
		return undo()
	case "reload":
		a, b := c.site(f.sites[0]).GW, c.site(f.sites[1]).GW
		link := func() error {
			a.Peerings = append(a.Peerings, a.BGPPeeringTo(b))
			b.Peerings = append(b.Peerings, b.BGPPeeringTo(a))
			a.Peerings[len(a.Peerings)-1].Keepalive, b.Peerings[len(b.Peerings)-1].Keepalive = 0, 0
			return reloadBoth(a, b)
		}
		unlink := func() error {
			a.Peerings = slices.DeleteFunc(a.Peerings, func(p netlab.Peering) bool { return p.Name == b.Name })
			b.Peerings = slices.DeleteFunc(b.Peerings, func(p netlab.Peering) bool { return p.Name == a.Name })
			return reloadBoth(a, b)
		}
		first, then := link, unlink
		if f.variant == "readd uplink" {
			first, then = unlink, link
		}
		if err := first(); err != nil {
			return err
		}
		time.Sleep(f.hold)
		return then()
	case "hog":
		p, err := c.lab.Hog(c.site(f.ns).GW.Net.GatewayNS)
		if err != nil {
			return err
		}
		time.Sleep(f.hold)
		return netlab.EndHog(p)
	}
	return fmt.Errorf("unknown fault kind %q", f.kind)
}

func reloadBoth(a, b *netlab.Gateway) error {
	if err := a.Reload(); err != nil {
		return err
	}
	return b.Reload()
}

// waitRoutes waits up to d for every site to have a vgate route to every
// other site's network, all at one look, and returns the sites that
// lacked one at the last look.
func (c *chaos) waitRoutes(d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var missing []int
		for _, s := range c.sites {
			have, err := s.SiteRoutes(context.Background())
			if err != nil || len(have) < len(c.sites)-1 {
				missing = append(missing, s.Index)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// describe says which networks each of sites lacks.
func (c *chaos) describe(sites []int) string {
	var parts []string
	for _, i := range sites {
		have, err := c.site(i).SiteRoutes(context.Background())
		if err != nil {
			parts = append(parts, fmt.Sprintf("site %d: %v", i, err))
			continue
		}
		var lack []string
		for _, o := range c.sites {
			if o.Index != i && !have[o.Index] {
				lack = append(lack, strconv.Itoa(o.Index))
			}
		}
		parts = append(parts, fmt.Sprintf("site %d lacks %s", i, strings.Join(lack, ",")))
	}
	return strings.Join(parts, "; ")
}

// dump logs what a human needs about sites and their uplinks: vgate bgp
// and status, the BGP sockets, the end of the log.
func (c *chaos) dump(sites []int) {
	show := map[int]bool{}
	for _, i := range sites {
		show[i] = true
		if up := c.site(i).Up; up != 0 {
			show[up] = true
		}
	}
	idx := make([]int, 0, len(show))
	for i := range show {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	if len(idx) > 8 {
		idx = idx[:8]
	}
	for _, i := range idx {
		g := c.site(i).GW
		bgp, _ := g.CLI("bgp", "--socket", g.Socket)
		status, _ := g.CLI("status", "--socket", g.Socket)
		c.t.Logf("---- site %d (%s) ----\nvgate bgp:\n%s\nvgate status:\n%s\nss (port 179):\n%s\nlog:\n%s",
			i, c.site(i).Role, bgp, status, g.BGPSockets(context.Background()), tail(g.Log(), 40))
	}
}

// gwFigures is what a gateway holds.
type gwFigures struct {
	fds, goroutines int
	// bgpOwned counts the gateway's BGP sockets by state (ss), listener
	// excluded; sessions its established sessions.
	bgpOwned map[string]int
	sessions int
}

// measure takes each gateway's figures: the least of three looks a
// second apart (what comes and goes, e.g. a request being served, is not
// counted).
func (c *chaos) measure() map[int]gwFigures {
	out := map[int]gwFigures{}
	for look := range 3 {
		if look > 0 {
			time.Sleep(time.Second)
		}
		for _, s := range c.sites {
			f := c.figures(s)
			if o, ok := out[s.Index]; ok {
				f.fds, f.goroutines = min(f.fds, o.fds), min(f.goroutines, o.goroutines)
			}
			out[s.Index] = f
		}
	}
	return out
}

var ssUserRE = regexp.MustCompile(`pid=(\d+),`)

func (c *chaos) figures(s *netlab.HubSite) gwFigures {
	g := s.GW
	f := gwFigures{bgpOwned: map[string]int{}}
	var err error
	if f.fds, err = g.FDs(); err != nil {
		c.t.Errorf("site %d: descriptors: %v", s.Index, err)
	}
	if f.goroutines, err = g.Goroutines(context.Background()); err != nil {
		c.t.Errorf("site %d: goroutines: %v", s.Index, err)
	}
	pid := strconv.Itoa(g.Proc().Pid())
	for _, line := range strings.Split(g.BGPSockets(context.Background()), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 6 || fs[0] == "LISTEN" || fs[0] == "State" {
			continue
		}
		if m := ssUserRE.FindStringSubmatch(line); m != nil && m[1] == pid {
			f.bgpOwned[fs[0]]++
		}
	}
	if st, err := g.BGP(); err == nil {
		for _, n := range st.Neighbors {
			if n.State == api.SessionEstablished {
				f.sessions++
			}
		}
	}
	return f
}

// Slack for what comes and goes in a gateway that is fine: the
// connection a question of the test leaves open, a session's transient
// goroutines. A leaked socket or a hung GoBGP FSM is more than this,
// and a BGP socket that is not a session's is caught on its own.
const (
	fdSlack        = 2
	goroutineSlack = 10
)

// checkGrowth compares each gateway with its figures before the faults,
// looking again for up to 20 s while one is over (a session's teardown
// takes a moment).
func (c *chaos) checkGrowth(before map[int]gwFigures) {
	var bad []int
	var lines []string
	deadline := time.Now().Add(20 * time.Second)
	totalBefore, totalAfter := gwFigures{}, gwFigures{}
	for _, s := range c.sites {
		var f gwFigures
		for {
			f = c.figures(s)
			b := before[s.Index]
			over := f.fds > b.fds+fdSlack || f.goroutines > b.goroutines+goroutineSlack ||
				f.bgpOwned["ESTAB"] != f.sessions || len(f.bgpOwned) > 1 || len(f.bgpOwned) == 1 && f.bgpOwned["ESTAB"] == 0
			if !over {
				break
			}
			if time.Now().After(deadline) {
				bad = append(bad, s.Index)
				lines = append(lines, fmt.Sprintf("site %d: descriptors %d -> %d, goroutines %d -> %d, BGP sockets %v for %d sessions",
					s.Index, b.fds, f.fds, b.goroutines, f.goroutines, f.bgpOwned, f.sessions))
				break
			}
			time.Sleep(2 * time.Second)
		}
		b := before[s.Index]
		totalBefore.fds += b.fds
		totalBefore.goroutines += b.goroutines
		totalAfter.fds += f.fds
		totalAfter.goroutines += f.goroutines
	}
	c.t.Logf("FIGURE all gateways: descriptors %d -> %d, goroutines %d -> %d (before the faults -> after)",
		totalBefore.fds, totalAfter.fds, totalBefore.goroutines, totalAfter.goroutines)
	if len(bad) > 0 {
		c.dump(bad)
		c.t.Errorf("left behind by the faults (slack %d descriptors, %d goroutines; every BGP socket a session's):\n%s",
			fdSlack, goroutineSlack, strings.Join(lines, "\n"))
	}
}

// recoveries sums the watchdog recoveries the running gateways count, and
// the watchdog's lines in every gateway's log (which outlives restarts).
func (c *chaos) recoveries() (counted uint64, logged int) {
	for _, s := range c.sites {
		if st, err := s.GW.BGP(); err == nil {
			for _, n := range st.Neighbors {
				counted += n.Recoveries
			}
		}
		logged += strings.Count(s.GW.Log(), `msg="bgp session started afresh by the watchdog`)
	}
	return counted, logged
}
