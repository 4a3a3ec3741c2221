// Command bgp measures vgate's dynamic routing in network namespaces:
//
// failover: the diamond below with BGP on every link, A→D via B and D→A via
// C (A prepends toward B, D toward C; see internal/e2e). host1 pings host4
// every 20 ms (50 pps); the forward path's middle gateway (B) is SIGKILLed,
// and, once B is back, the return path's (C). The outage is the longest
// gap between two replies, less one interval: what a host sees. After each
// kill the gateway is started again, and the time from its start until
// the survivor's session to it is Established is "session back".
// Reported: every figure and the medians, for each variant in the same
// run: vgate as built (default probe 50ms × 8), vgate with the probe at
// the old 100ms × 10 (-old-probe), and a baseline binary (-base, e.g. the
// previous release; it gets no probe setting).
//
//	      gw2 (B)
//	    //       \\
//	gw1 (A)      gw4 (D)
//	    \\       //
//	      gw3 (C)
//
// scale: gw2 originates N prefixes (10.128.0.0/9 cut into /24s); gw1 starts
// and the time until all N are kernel routes and AllowedIPs of its tunnel is
// measured, with gw1's resident memory afterwards.
//
// third-party: the same host-to-host outage towards a router that is not
// vgate (FRR) when the tunnel to it dies, with BFD and without
// (thirdparty.go).
//
// It never asserts on the figures. Run as root from the repository root:
//
//	go run ./bench/bgp -vgate bin/vgate [-base OLD_BINARY] [-old-probe] [-kills 5] [-third-party 3] [-routes 10000] [-json]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// variant is one way of running the failover: a binary and a probe timing
// (zero: the binary's default, and none rendered).
type variant struct {
	Name       string        `json:"name"`
	Bin        string        `json:"-"`
	Interval   time.Duration `json:"probe_interval_ns,omitempty"`
	Multiplier int           `json:"probe_multiplier,omitempty"`
}

type failoverResult struct {
	Variant          variant   `json:"variant"`
	ForwardMS        []float64 `json:"forward_outage_ms"`
	ReturnMS         []float64 `json:"return_outage_ms"`
	SessionBackMS    []float64 `json:"session_back_ms"`
	ForwardMedian    float64   `json:"forward_outage_median_ms"`
	ReturnMedian     float64   `json:"return_outage_median_ms"`
	SessionBackMedia float64   `json:"session_back_median_ms"`
	Error            string    `json:"error,omitempty"`
}

type result struct {
	Failover       []failoverResult   `json:"failover"`
	ThirdParty     []thirdPartyResult `json:"third_party_failover,omitempty"`
	PingIntervalMS float64            `json:"ping_interval_ms"`
	Routes         int                `json:"routes"`
	InstallSeconds float64            `json:"install_s"`
	GatewayRSSMiB  float64            `json:"gateway_rss_mib"`
}

const pingInterval = 20 * time.Millisecond

func main() {
	bin := flag.String("vgate", "bin/vgate", "vgate binary")
	base := flag.String("base", "", "baseline vgate binary to measure in the same run (optional)")
	oldProbe := flag.Bool("old-probe", true, "also run vgate with the probe at the old 100ms x 10")
	kills := flag.Int("kills", 5, "failover runs per direction")
	cuts := flag.Int("third-party", 3, "third-party (FRR) failover runs per variant (0: skip)")
	routes := flag.Int("routes", 10000, "prefixes for the scale run (0: skip)")
	asJSON := flag.Bool("json", false, "print JSON")
	flag.Parse()
	if !netlab.Root() {
		fmt.Fprintln(os.Stderr, "bench/bgp: needs root")
		os.Exit(2)
	}
	res := result{PingIntervalMS: float64(pingInterval) / float64(time.Millisecond)}
	if *kills > 0 {
		vs := []variant{{Name: "vgate (probe 50ms x 8)", Bin: *bin}}
		if *oldProbe {
			vs = append(vs, variant{Name: "vgate, probe 100ms x 10", Bin: *bin, Interval: 100 * time.Millisecond, Multiplier: 10})
		}
		if *base != "" {
			vs = append(vs, variant{Name: "base " + *base, Bin: *base})
		}
		for _, v := range vs {
			fr := failover(v, *kills)
			res.Failover = append(res.Failover, fr)
			if fr.Error != "" {
				fmt.Fprintf(os.Stderr, "failover %s: %s\n", v.Name, fr.Error)
			}
		}
	}
	if *cuts > 0 {
		for _, bfd := range []bool{true, false} {
			tr := thirdParty(*bin, bfd, *cuts)
			res.ThirdParty = append(res.ThirdParty, tr)
			if tr.Error != "" {
				fmt.Fprintf(os.Stderr, "third-party failover %s: %s\n", tr.Name, tr.Error)
			}
		}
	}
	if *routes > 0 {
		if err := scale(*bin, *routes, &res); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(1)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return
	}
	if len(res.Failover) > 0 {
		fmt.Printf("host-to-host outage (longest gap between replies, ping every %.0f ms), median of runs; session back = gateway start to Established\n", res.PingIntervalMS)
		fmt.Printf("%-40s %12s %12s %14s\n", "variant", "forward ms", "return ms", "session back ms")
		for _, f := range res.Failover {
			fmt.Printf("%-40s %12.0f %12.0f %14.0f   runs fwd %v ret %v back %v\n", f.Variant.Name, f.ForwardMedian, f.ReturnMedian, f.SessionBackMedia, f.ForwardMS, f.ReturnMS, f.SessionBackMS)
		}
	}
	if len(res.ThirdParty) > 0 {
		fmt.Printf("third-party router (FRR) behind a cut tunnel, second path through another vgate gateway; host-to-host outage, median of runs\n")
		fmt.Printf("%-40s %12s %12s\n", "variant", "h1->FRR ms", "FRR->h1 ms")
		for _, f := range res.ThirdParty {
			fmt.Printf("%-40s %12.0f %12.0f   runs fwd %v ret %v\n", f.Name, f.ForwardMedian, f.ReturnMedian, f.ForwardMS, f.ReturnMS)
		}
	}
	if res.Routes > 0 {
		fmt.Printf("scale: %d routes in kernel and AllowedIPs %.2f s after the gateway started; gateway RSS %.1f MiB\n",
			res.Routes, res.InstallSeconds, res.GatewayRSSMiB)
	}
}

func lab(n int, bin string) (*netlab.Lab, []*netlab.Gateway, error) {
	l, err := netlab.New("")
	if err != nil {
		return nil, nil, err
	}
	if _, err := l.AddNetworks(n); err != nil {
		l.Close()
		return nil, nil, err
	}
	var gws []*netlab.Gateway
	for i := 1; i <= n; i++ {
		g, err := l.NewGateway(l.Network(i), bin)
		if err != nil {
			l.Close()
			return nil, nil, err
		}
		gws = append(gws, g)
	}
	return l, gws, nil
}

// installedVia waits until g's kernel route to prefix goes through peering.
func installedVia(l *netlab.Lab, g *netlab.Gateway, prefix, peering string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, _ := l.Run(g.Net.GatewayNS, "ip", "route", "show", prefix, "proto", "76")
		if strings.Contains(out, "dev vg-"+peering+" ") {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s not via %s within %v", g.Name, prefix, peering, timeout)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func ms(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Millisecond)
}

// sessionBack waits until g's session to peer is Established and returns
// the time since t0.
func sessionBack(g *netlab.Gateway, peer string, t0 time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if st, err := g.BGP(); err == nil {
			for _, n := range st.Neighbors {
				if n.Name == peer && n.State == api.SessionEstablished {
					return time.Since(t0), nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: session to %s not back within %v", g.Name, peer, timeout)
}

func failover(v variant, kills int) (fr failoverResult) {
	fr.Variant = v
	if err := failoverRuns(v, kills, &fr); err != nil {
		fr.Error = err.Error()
	}
	fr.ForwardMedian, fr.ReturnMedian, fr.SessionBackMedia = median(fr.ForwardMS), median(fr.ReturnMS), median(fr.SessionBackMS)
	return fr
}

func failoverRuns(v variant, kills int, fr *failoverResult) error {
	l, gws, err := lab(4, v.Bin)
	if err != nil {
		return err
	}
	defer l.Close()
	a, b, c, d := gws[0], gws[1], gws[2], gws[3]
	netlab.LinkBGP(a, b)
	netlab.LinkBGP(a, c)
	netlab.LinkBGP(b, d)
	netlab.LinkBGP(c, d)
	a.Peering(b.Name).BGP.Prepend = 1
	d.Peering(c.Name).BGP.Prepend = 1
	for _, g := range gws {
		for i := range g.Peerings {
			g.Peerings[i].BGP.ProbeInterval, g.Peerings[i].BGP.ProbeMultiplier = v.Interval, v.Multiplier
		}
		if err := g.Start(); err != nil {
			return err
		}
	}
	n1, n4 := l.Network(1), l.Network(4)
	// One kill: the victim's outage as host1 sees it, then its restart
	// and the survivor's session back.
	kill := func(victim, survivor *netlab.Gateway, out *[]float64) error {
		if err := installedVia(l, a, "10.4.0.0/16", "net2", 60*time.Second); err != nil {
			return err
		}
		if err := installedVia(l, d, "10.1.0.0/16", "net3", 60*time.Second); err != nil {
			return err
		}
		if err := l.WaitPing(n1.HostNS, n4.HostAddr, 20*time.Second); err != nil {
			return err
		}
		time.Sleep(2 * time.Second) // settle
		p := l.StartPing(n1.HostNS, n4.HostAddr, pingInterval, 8*time.Second)
		time.Sleep(2 * time.Second)
		if err := victim.Kill(); err != nil {
			return err
		}
		r := p.Wait()
		if r.Received == 0 {
			return errors.New("no ping reply at all")
		}
		*out = append(*out, ms(r.Outage(pingInterval)))
		t0 := time.Now()
		if err := victim.Start(); err != nil {
			return err
		}
		back, err := sessionBack(survivor, victim.Name, t0, 60*time.Second)
		if err != nil {
			return err
		}
		fr.SessionBackMS = append(fr.SessionBackMS, ms(back))
		return nil
	}
	for i := 0; i < kills; i++ {
		if err := kill(b, a, &fr.ForwardMS); err != nil {
			return fmt.Errorf("forward run %d: %w", i, err)
		}
		if err := kill(c, d, &fr.ReturnMS); err != nil {
			return fmt.Errorf("return run %d: %w", i, err)
		}
	}
	return nil
}

func scale(bin string, n int, res *result) error {
	if n > 32768 {
		return errors.New("at most 32768 routes (/24s of 10.128.0.0/9)")
	}
	l, gws, err := lab(2, bin)
	if err != nil {
		return err
	}
	defer l.Close()
	a, b := gws[0], gws[1]
	netlab.LinkBGP(a, b)
	a.Peering(b.Name).BGP.MaxPrefixes = n + 100
	for i := 0; i < n; i++ {
		b.Spaces = append(b.Spaces, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + i/256), byte(i % 256), 0}), 24))
	}
	if err := b.Start(); err != nil {
		return err
	}
	t0 := time.Now()
	if err := a.Start(); err != nil {
		return err
	}
	want := n + 2 // + b's own /16 and b's tunnel address
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("not all %d routes installed within 5 min", n)
		}
		out, _ := l.Run(a.Net.GatewayNS, "ip", "-4", "route", "show", "proto", "76")
		if strings.Count(out, "\n") >= want {
			st, err := a.Status()
			if err == nil && len(st.Peerings) == 1 && len(st.Peerings[0].AllowedIPs) >= want {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.Routes = n
	res.InstallSeconds = time.Since(t0).Seconds()
	b2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.Proc().Pid()))
	if err == nil {
		m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b2)
		if m != nil {
			kb, _ := strconv.Atoi(string(m[1]))
			res.GatewayRSSMiB = float64(kb) / 1024
		}
	}
	return nil
}
