// Command scale builds a hub-of-hubs of vgate gateways in network
// namespaces, all BGP, and measures what it costs:
//
//	                   core (site 1)
//	     /        /          |          \        \
//	  hub 2    hub 3   ...  hub 11     (up to 10 hubs)
//	  / | \    / | \         / | \
//	spokes   spokes        spokes      (the rest, spread over the hubs)
//
// Every gateway has one network 10.<i>.0.0/16 (10.<i>.0.1 on lo
// stands for it) and is at or under the 10-tunnel limit: with -n 101, the core
// has 10 hubs, each hub the core and 9 spokes. All gateways start at once.
//
// The topology is netlab's (BuildHubOfHubs). Reported: the time from the
// cold start until every gateway has a kernel route for every other
// site's network, all at the same time (confirmed by a look at every
// gateway after the last one got its last route), and how many do; after -settle, over an idle window
// of -idle, per role (core, hub, spoke) and in total: resident memory, CPU
// (% of one core), live heap after a GC and the allocation rate (both read
// through each gateway's VGATE_DEBUG_PPROF socket); and a ping from a spoke
// to a spoke behind another hub (four tunnel hops).
//
// It never asserts on the figures, needs root, and deletes every namespace
// and process it made when it ends, also on Ctrl-C. Run from the
// repository root (make bench-scale N=21):
//
//	go run ./bench/scale -vgate bin/vgate [-n 101] [-idle 60s] [-settle 20s] [-json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

type options struct {
	bin         string
	n           int
	idle        time.Duration
	settle      time.Duration
	convergeMax time.Duration
	jsonOut     bool
	keep        bool
	profDir     string
	probe       string // "" (the default) or interval*multiplier, e.g. 100ms*5
	logLevel    string
	probeIv     time.Duration
	probeMult   int
}

// Site is one gateway of the topology (netlab.HubOfHubs) and its figures.
type Site struct {
	*netlab.HubSite

	Tunnels      int     `json:"tunnels"`
	ConvergedSec float64 `json:"converged_s"`
	Routes       int     `json:"routes"` // other sites' networks in its kernel table when last looked
	RSSMiB       float64 `json:"rss_mib"`
	PSSMiB       float64 `json:"pss_mib"`        // RSS with shared pages (the binary) split among the processes
	RSSGrowthMiB float64 `json:"rss_growth_mib"` // RSS change over the idle window (flat: ~0)
	CPUPercent   float64 `json:"idle_cpu_percent"`
	HeapMB       float64 `json:"live_heap_mb"`
	AllocMBps    float64 `json:"alloc_mb_per_s"`

	proc *netlab.Proc
	sock string
}

// RoleFigures aggregates one role.
type RoleFigures struct {
	Role        string  `json:"role"`
	Count       int     `json:"count"`
	RSSMiBMean  float64 `json:"rss_mib_mean"`
	RSSMiBMax   float64 `json:"rss_mib_max"`
	PSSMiBMean  float64 `json:"pss_mib_mean"`
	RSSGrowth   float64 `json:"rss_growth_mib_mean"`
	CPUMean     float64 `json:"idle_cpu_percent_mean"`
	CPUMax      float64 `json:"idle_cpu_percent_max"`
	HeapMBMean  float64 `json:"live_heap_mb_mean"`
	HeapMBMax   float64 `json:"live_heap_mb_max"`
	AllocMBps   float64 `json:"alloc_mb_per_s_mean"`
	AllocMBpMax float64 `json:"alloc_mb_per_s_max"`
}

// Report is the result (-json prints it).
type Report struct {
	Started      time.Time     `json:"started"`
	Binary       string        `json:"binary"`
	Sites        int           `json:"sites"`
	Hubs         int           `json:"hubs"`
	LoadAvg      string        `json:"loadavg_at_start"`
	Probe        string        `json:"probe"`              // the tunnel probe's timing`
	ConvergedSec float64       `json:"converged_s"`        // cold start to every prefix everywhere at once; 0: did not
	Converged    int           `json:"converged_gateways"` // gateways with every other network at their last look
	RoutesMean   float64       `json:"routes_mean"`        // of the N-1 each gateway should have, at the end of the wait
	TotalRSSMiB  float64       `json:"total_rss_mib"`
	TotalPSSMiB  float64       `json:"total_pss_mib"` // what the gateways really take together
	IdleSec      float64       `json:"idle_window_s"`
	Roles        []RoleFigures `json:"roles"`
	PingFrom     int           `json:"ping_from"`
	PingTo       int           `json:"ping_to"`
	PingHops     int           `json:"ping_tunnel_hops"`
	PingOK       bool          `json:"ping_ok"`
	PingRTTms    float64       `json:"ping_rtt_ms"`
	PingAttempts int           `json:"ping_attempts"` // of 5 pings each, 5 s apart, up to 3
	Sitelist     []*Site       `json:"site_list"`
}

func main() {
	var o options
	flag.StringVar(&o.bin, "vgate", "bin/vgate", "vgate binary")
	flag.IntVar(&o.n, "n", 101, "sites (3..254): a core, up to 10 hubs and the rest spokes")
	flag.DurationVar(&o.idle, "idle", 60*time.Second, "idle window for CPU and allocation figures")
	flag.DurationVar(&o.settle, "settle", 20*time.Second, "wait after convergence before the idle window")
	flag.DurationVar(&o.convergeMax, "converge-timeout", 10*time.Minute, "give up waiting for convergence after this")
	flag.BoolVar(&o.jsonOut, "json", false, "print JSON")
	flag.BoolVar(&o.keep, "keep", false, "keep the lab directory (configs, logs)")
	flag.StringVar(&o.profDir, "profile", "", "directory for heap profiles 20 s apart and a CPU profile of those 20 s, of the core, the first hub and the first spoke, after the idle window")
	flag.StringVar(&o.logLevel, "log-level", "info", "the gateways' --log-level (debug logs WireGuard and BGP state changes, and costs CPU)")
	flag.StringVar(&o.probe, "probe", "", "tunnel probe timing for every peering, interval*multiplier (e.g. 100ms*5); default: vgate's (50ms*8)")
	flag.Parse()
	if o.probe != "" {
		iv, mult, ok := strings.Cut(o.probe, "*")
		d, err := time.ParseDuration(iv)
		m, merr := strconv.Atoi(mult)
		if !ok || err != nil || merr != nil || d <= 0 || m <= 0 {
			fatalf("-probe %q: want interval*multiplier, e.g. 100ms*5", o.probe)
		}
		o.probeIv, o.probeMult = d, m
	}
	if o.n < 3 || o.n > 254 {
		fatalf("-n %d: want 3..254", o.n)
	}
	if !netlab.Root() {
		fatalf("needs root (network namespaces)")
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		fatalf("%v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		fatalf("vgate binary: %v (make build, or -vgate PATH)", err)
	}
	o.bin = bin

	// Ctrl-C or SIGTERM cancels ctx; run returns and its deferred Close
	// removes everything. A second signal is left to the default action
	// only after cleanup has had its chance.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if rep != nil {
		if o.jsonOut {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			printReport(os.Stdout, rep)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		stop()
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: "+format+"\n", args...)
	os.Exit(2)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// topology is netlab.HubOfHubs(n) as Sites.
func topology(n int) (sites []*Site, hubs int) {
	hs, hubs := netlab.HubOfHubs(n)
	for _, h := range hs {
		sites = append(sites, &Site{HubSite: h})
	}
	return sites, hubs
}

func run(ctx context.Context, o options) (rep *Report, err error) {
	if err := netlab.HubOfHubsErr(o.n); err != nil {
		return nil, err
	}
	sites, hubs := topology(o.n)
	rep = &Report{Started: time.Now().UTC(), Binary: o.bin, Sites: o.n, Hubs: hubs, LoadAvg: netlab.LoadAvg(), Sitelist: sites,
		Probe: "50ms*8 (default)"}
	if o.probe != "" {
		rep.Probe = o.probe
	}
	lab, err := netlab.New("")
	if err != nil {
		return nil, err
	}
	lab.KeepDir = o.keep
	defer func() {
		logf("cleaning up lab %s (%d namespaces)", lab.Prefix, len(lab.Namespaces()))
		err = errors.Join(err, lab.Close())
		if o.keep {
			logf("lab files kept in %s", lab.Dir)
		}
	}()

	logf("building %d sites (%d hubs) in lab %s", o.n, hubs, lab.Prefix)
	if err := build(ctx, lab, o, sites); err != nil {
		return rep, err
	}

	// Cold start: every gateway at once.
	t0 := time.Now()
	for _, s := range sites {
		p, err := lab.Start(s.GW.Net.GatewayNS, s.GW.LogPath, "env", "VGATE_DEBUG_PPROF="+s.sock, s.GW.Bin, "run", "--config", s.GW.ConfigPath, "--log-level", o.logLevel)
		if err != nil {
			return rep, err
		}
		s.proc = p
	}
	logf("started %d gateways in %.1fs; waiting for every site's route everywhere", len(sites), time.Since(t0).Seconds())
	var cerr error
	rep.ConvergedSec, cerr = converge(ctx, o, sites, t0)
	if ctx.Err() != nil {
		return rep, cerr
	}
	var routes int
	for _, s := range sites {
		if s.Routes >= len(sites)-1 {
			rep.Converged++
		}
		routes += s.Routes
	}
	rep.RoutesMean = float64(routes) / float64(len(sites))
	if cerr != nil {
		// Still measure the rest: what an unconverged mesh costs is a figure too.
		logf("%v; measuring anyway", cerr)
		diagnose(ctx, sites)
	} else {
		logf("converged in %.1fs; settling %v", rep.ConvergedSec, o.settle)
	}
	if err := sleep(ctx, o.settle); err != nil {
		return rep, err
	}

	// Idle window.
	logf("idle window %v", o.idle)
	type start struct {
		cpu   time.Duration
		alloc uint64
	}
	starts := make([]start, len(sites))
	for i, s := range sites {
		c, err := s.proc.CPUTime()
		if err != nil {
			return rep, fmt.Errorf("site %d: %w", s.Index, err)
		}
		ms, err := memStats(ctx, s.sock, false)
		if err != nil {
			return rep, fmt.Errorf("site %d: %w", s.Index, err)
		}
		starts[i] = start{c, ms["TotalAlloc"]}
		s.RSSGrowthMiB = -procKiB(fmt.Sprintf("/proc/%d/status", s.proc.Pid()), "VmRSS:") / 1024
	}
	w0 := time.Now()
	if err := sleep(ctx, o.idle); err != nil {
		return rep, err
	}
	win := time.Since(w0)
	rep.IdleSec = win.Seconds()
	for i, s := range sites {
		c, err := s.proc.CPUTime()
		if err != nil {
			return rep, fmt.Errorf("site %d: %w", s.Index, err)
		}
		ms, err := memStats(ctx, s.sock, false)
		if err != nil {
			return rep, fmt.Errorf("site %d: %w", s.Index, err)
		}
		s.CPUPercent = 100 * (c - starts[i].cpu).Seconds() / win.Seconds()
		s.AllocMBps = float64(ms["TotalAlloc"]-starts[i].alloc) / 1e6 / win.Seconds()
	}
	// Memory after the window: RSS, then the live heap after a forced GC.
	for _, s := range sites {
		s.RSSMiB = procKiB(fmt.Sprintf("/proc/%d/status", s.proc.Pid()), "VmRSS:") / 1024
		s.PSSMiB = procKiB(fmt.Sprintf("/proc/%d/smaps_rollup", s.proc.Pid()), "Pss:") / 1024
		s.RSSGrowthMiB += s.RSSMiB
		rep.TotalRSSMiB += s.RSSMiB
		rep.TotalPSSMiB += s.PSSMiB
		ms, err := memStats(ctx, s.sock, true)
		if err != nil {
			return rep, fmt.Errorf("site %d: %w", s.Index, err)
		}
		s.HeapMB = float64(ms["HeapAlloc"]) / 1e6
	}
	rep.Roles = aggregate(sites)
	if o.profDir != "" {
		if err := profiles(ctx, o.profDir, sites); err != nil {
			logf("profiles: %v", err)
		}
	}

	// Four hops: a spoke to a spoke behind another hub.
	if from, to := pingPair(sites); from != nil && to != nil {
		rep.PingFrom, rep.PingTo = from.Index, to.Index
		rep.PingHops = hops(sites, from, to)
		rtt, attempts, err := ping(ctx, lab, sites, from, to)
		rep.PingOK, rep.PingRTTms, rep.PingAttempts = err == nil, rtt, attempts
	}
	return rep, nil
}

// build makes the namespaces, the underlay and the gateway configs
// (netlab.BuildHubOfHubs), with -probe's timing.
func build(ctx context.Context, lab *netlab.Lab, o options, sites []*Site) error {
	hs := make([]*netlab.HubSite, len(sites))
	for i, s := range sites {
		hs[i] = s.HubSite
		s.sock = lab.Path(fmt.Sprintf("s%d-pprof.sock", s.Index))
	}
	if err := lab.BuildHubOfHubs(ctx, o.bin, hs); err != nil {
		return err
	}
	for _, s := range sites {
		s.Tunnels = len(s.GW.Peerings)
		if o.probeIv == 0 {
			continue
		}
		for i := range s.GW.Peerings {
			if b := s.GW.Peerings[i].BGP; b != nil {
				b.ProbeInterval, b.ProbeMultiplier = o.probeIv, o.probeMult
			}
		}
		if err := s.GW.WriteConfig(); err != nil {
			return err
		}
	}
	return nil
}

// converge polls the gateways' kernel routes (protocol 76, vgate's) until
// every gateway has every other site's network at the same time. Each
// look checks the gateways that lacked a route at their last look; once
// none does, a look at all of them confirms it (one that had them all may
// have lost one since: a session that goes down takes a site's network
// away from every other gateway). It records when each gateway first had
// them all (ConvergedSec) and what it had at its last look (Routes), and
// returns how long after t0 the whole lab had every route.
func converge(ctx context.Context, o options, sites []*Site, t0 time.Time) (float64, error) {
	deadline := t0.Add(o.convergeMax)
	left := slices.Clone(sites)
	lastLog := time.Now()
	for {
		// One `ip` per gateway to look at per look: look less often in a
		// big lab, where they would add to the load being measured.
		if err := sleep(ctx, max(time.Second, time.Duration(len(sites))*time.Second/30)); err != nil {
			return 0, err
		}
		var still []*Site
		for _, s := range left {
			if s.proc.Exited() {
				return 0, fmt.Errorf("site %d exited:\n%s", s.Index, s.proc.LogTail(20))
			}
			have, err := s.SiteRoutes(ctx)
			if err != nil && ctx.Err() != nil {
				return 0, ctx.Err()
			}
			delete(have, s.Index)
			s.Routes = len(have)
			if s.Routes >= len(sites)-1 {
				if s.ConvergedSec == 0 {
					s.ConvergedSec = time.Since(t0).Seconds()
				}
				continue
			}
			still = append(still, s)
		}
		switch {
		case len(still) == 0 && len(left) == len(sites):
			return time.Since(t0).Seconds(), nil
		case len(still) == 0:
			left = slices.Clone(sites) // confirm: every gateway at once
			continue
		}
		left = still
		if time.Since(lastLog) > 10*time.Second {
			logf("%.0fs: %d of %d gateways have every route", time.Since(t0).Seconds(), len(sites)-len(left), len(sites))
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			var ids []string
			for _, s := range left {
				ids = append(ids, strconv.Itoa(s.Index))
			}
			return 0, fmt.Errorf("not converged after %v: sites %s lack routes", o.convergeMax, strings.Join(ids, ","))
		}
	}
}

// memStats is netlab.MemStats with a 30 s bound.
func memStats(ctx context.Context, sock string, gc bool) (map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return netlab.MemStats(ctx, sock, gc)
}

// profiles saves, for the first site of each role, a heap profile after a
// GC (…-heap0) and another 20 s later (…-heap1), with a CPU profile of
// those 20 s: the allocations of the window are
// go tool pprof -sample_index=alloc_space -base …-heap0.pb.gz …-heap1.pb.gz.
// (A delta profile, allocs?seconds=, is empty when no GC ran meanwhile.)
func profiles(ctx context.Context, dir string, sites []*Site) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var picked []*Site
	seen := map[string]bool{}
	for _, s := range sites {
		if !seen[s.Role] {
			seen[s.Role] = true
			picked = append(picked, s)
		}
	}
	name := func(s *Site, kind string) string {
		return filepath.Join(dir, fmt.Sprintf("%s-s%d-%s.pb.gz", s.Role, s.Index, kind))
	}
	for _, s := range picked {
		if err := fetch(ctx, s.sock, "/debug/pprof/heap?gc=1", name(s, "heap0")); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(picked))
	for _, s := range picked {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fetch(ctx, s.sock, "/debug/pprof/profile?seconds=20", name(s, "cpu"))
		}()
	}
	wg.Wait()
	close(errs)
	all := []error{}
	for err := range errs {
		all = append(all, err)
	}
	for _, s := range picked {
		all = append(all, fetch(ctx, s.sock, "/debug/pprof/heap?gc=1", name(s, "heap1")))
	}
	logf("profiles in %s", dir)
	return errors.Join(all...)
}

func fetch(ctx context.Context, sock, path, file string) error {
	b, err := netlab.PprofGet(ctx, sock, path)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// procKiB reads the "key: N kB" line of a /proc file.
func procKiB(path, key string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb
		}
	}
	return 0
}

func aggregate(sites []*Site) []RoleFigures {
	var out []RoleFigures
	for _, role := range []string{"core", "hub", "spoke"} {
		r := RoleFigures{Role: role}
		for _, s := range sites {
			if s.Role != role {
				continue
			}
			r.Count++
			r.RSSMiBMean += s.RSSMiB
			r.PSSMiBMean += s.PSSMiB
			r.RSSGrowth += s.RSSGrowthMiB
			r.CPUMean += s.CPUPercent
			r.HeapMBMean += s.HeapMB
			r.AllocMBps += s.AllocMBps
			r.RSSMiBMax = max(r.RSSMiBMax, s.RSSMiB)
			r.CPUMax = max(r.CPUMax, s.CPUPercent)
			r.HeapMBMax = max(r.HeapMBMax, s.HeapMB)
			r.AllocMBpMax = max(r.AllocMBpMax, s.AllocMBps)
		}
		if r.Count == 0 {
			continue
		}
		c := float64(r.Count)
		r.RSSMiBMean /= c
		r.PSSMiBMean /= c
		r.RSSGrowth /= c
		r.CPUMean /= c
		r.HeapMBMean /= c
		r.AllocMBps /= c
		out = append(out, r)
	}
	return out
}

// pingPair picks the first spoke and the last spoke behind another hub
// (or, in a tiny topology, the farthest pair there is).
func pingPair(sites []*Site) (from, to *Site) {
	var spokes []*Site
	for _, s := range sites {
		if s.Role == "spoke" {
			spokes = append(spokes, s)
		}
	}
	if len(spokes) > 0 {
		from = spokes[0]
		for i := len(spokes) - 1; i >= 0; i-- {
			if spokes[i].Up != from.Up {
				return from, spokes[i]
			}
		}
		if len(spokes) > 1 {
			return from, spokes[len(spokes)-1]
		}
		return from, sites[1]
	}
	return sites[1], sites[len(sites)-1]
}

// hops counts tunnels between two sites of the tree.
func hops(sites []*Site, a, b *Site) int {
	path := func(s *Site) []int {
		var p []int
		for s != nil {
			p = append(p, s.Index)
			if s.Up == 0 {
				break
			}
			s = sites[s.Up-1]
		}
		return p
	}
	pa, pb := path(a), path(b)
	for i, x := range pa {
		if j := slices.Index(pb, x); j >= 0 {
			return i + j
		}
	}
	return -1
}

var pingRE = regexp.MustCompile(`= [0-9.]+/([0-9.]+)/`)

// ping sends 5 pings from one site's network to another's, up to three
// times 5 s apart (a session held down by a missed probe on a loaded
// machine takes a route away for a while); on a failure it logs each hop's
// route toward the destination.
func ping(ctx context.Context, lab *netlab.Lab, sites []*Site, from, to *Site) (rtt float64, attempts int, err error) {
	for attempts = 1; attempts <= 3; attempts++ {
		if rtt, err = pingOnce(ctx, lab, from, to); err == nil {
			return rtt, attempts, nil
		}
		logf("ping %d -> %d, attempt %d: %v", from.Index, to.Index, attempts, err)
		for _, s := range sites {
			if out, rerr := exec.CommandContext(ctx, "ip", "-n", s.GW.Net.GatewayNS, "-4", "route", "get", to.GW.Net.GatewayLAN.String()).CombinedOutput(); rerr == nil {
				logf("  site %d (%s): %s", s.Index, s.Role, strings.TrimSpace(string(out)))
			}
		}
		if err := sleep(ctx, 5*time.Second); err != nil {
			return 0, attempts, err
		}
	}
	return 0, attempts - 1, err
}

func pingOnce(ctx context.Context, lab *netlab.Lab, from, to *Site) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := lab.RunContext(ctx, from.GW.Net.GatewayNS, "ping", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "2",
		"-I", from.GW.Net.GatewayLAN.String(), to.GW.Net.GatewayLAN.String())
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, lastLine(out))
	}
	m := pingRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no rtt in %q", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func printReport(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\nhub-of-hubs: %d sites (core, %d hubs, %d spokes), all BGP, tunnel probe %s; load average at start %s\n",
		r.Sites, r.Hubs, r.Sites-1-r.Hubs, r.Probe, r.LoadAvg)
	if r.ConvergedSec > 0 {
		fmt.Fprintf(w, "cold start to every prefix everywhere (%d of %d gateways, each with all %d other networks at once): %.1f s\n",
			r.Converged, r.Sites, r.Sites-1, r.ConvergedSec)
	} else {
		fmt.Fprintf(w, "NOT CONVERGED: %d of %d gateways had every route; %.1f of %d routes on average\n",
			r.Converged, r.Sites, r.RoutesMean, r.Sites-1)
	}
	if len(r.Roles) > 0 {
		fmt.Fprintf(w, "total RSS: %.0f MiB (PSS, shared pages split: %.0f MiB); idle window %.0f s\n\n", r.TotalRSSMiB, r.TotalPSSMiB, r.IdleSec)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "role\tcount\tRSS MiB mean\tmax\tPSS mean\tRSS growth in window\tlive heap MB mean\tmax\tidle CPU % mean\tmax\talloc MB/s mean\tmax\t")
		for _, x := range r.Roles {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%+.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%.3f\t%.3f\t\n", x.Role, x.Count,
				x.RSSMiBMean, x.RSSMiBMax, x.PSSMiBMean, x.RSSGrowth, x.HeapMBMean, x.HeapMBMax, x.CPUMean, x.CPUMax, x.AllocMBps, x.AllocMBpMax)
		}
		tw.Flush()
	}
	if r.PingFrom != 0 {
		status := "FAILED 3 times"
		if r.PingOK {
			status = fmt.Sprintf("ok, %.2f ms (attempt %d)", r.PingRTTms, r.PingAttempts)
		}
		fmt.Fprintf(w, "\nping site %d -> site %d (%d tunnel hops): %s\n", r.PingFrom, r.PingTo, r.PingHops, status)
	}
}

// diagnose logs, for the first unconverged sites, which networks they
// lack and what `vgate routes` and `vgate bgp` say there and on their
// uplink, so a run that does not converge says why.
func diagnose(ctx context.Context, sites []*Site) {
	byIndex := map[int]*Site{}
	for _, s := range sites {
		byIndex[s.Index] = s
	}
	shown := 0
	for _, s := range sites {
		if s.Routes >= len(sites)-1 || shown == 3 {
			continue
		}
		shown++
		have, _ := s.SiteRoutes(ctx)
		var lack []string
		for _, o := range sites {
			if o != s && !have[o.Index] {
				lack = append(lack, fmt.Sprintf("%s (site %d)", netlab.SiteNetwork(o.Index), o.Index))
			}
		}
		logf("site %d (%s) lacks %s", s.Index, s.Role, strings.Join(lack, ", "))
		show := []*Site{s}
		if up := byIndex[s.Up]; up != nil {
			show = append(show, up)
		}
		for _, x := range show {
			for _, verb := range []string{"routes", "bgp"} {
				o, err := exec.CommandContext(ctx, x.GW.Bin, verb, "--socket", x.GW.Socket).CombinedOutput()
				logf("site %d: vgate %s (%v):\n%s", x.Index, verb, err, o)
			}
		}
	}
}
