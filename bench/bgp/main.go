// Command bgp measures vgate's dynamic routing in network namespaces:
//
// failover: the diamond below with BGP on every link, A→D via B (A
// prepends toward B... D toward C, see internal/e2e). host1 pings host4 at
// 50 pps; B's gateway is killed (SIGKILL); the outage is the number of lost
// probes × the interval. B is brought back between kills. Reported: every
// outage and the median.
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
// It never asserts on the figures. Run as root from the repository root:
//
//	go run ./bench/bgp -vgate bin/vgate [-kills 5] [-routes 10000] [-json]
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

	"github.com/vgate-project/vgate/internal/netlab"
)

type result struct {
	FailoverMS      []float64 `json:"failover_ms"`
	FailoverMedian  float64   `json:"failover_median_ms"`
	ProbeIntervalMS float64   `json:"probe_interval_ms"`
	Routes          int       `json:"routes"`
	InstallSeconds  float64   `json:"install_s"`
	GatewayRSSMiB   float64   `json:"gateway_rss_mib"`
}

func main() {
	bin := flag.String("vgate", "bin/vgate", "vgate binary")
	kills := flag.Int("kills", 5, "failover runs")
	routes := flag.Int("routes", 10000, "prefixes for the scale run (0: skip)")
	asJSON := flag.Bool("json", false, "print JSON")
	flag.Parse()
	if !netlab.Root() {
		fmt.Fprintln(os.Stderr, "bench/bgp: needs root")
		os.Exit(2)
	}
	var res result
	if *kills > 0 {
		if err := failover(*bin, *kills, &res); err != nil {
			fmt.Fprintln(os.Stderr, "failover:", err)
			os.Exit(1)
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
	if len(res.FailoverMS) > 0 {
		fmt.Printf("failover (kill the active-path gateway, ping at %.0f pps): median %.0f ms, runs %v ms\n",
			1000/res.ProbeIntervalMS, res.FailoverMedian, res.FailoverMS)
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

var lossRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func failover(bin string, kills int, res *result) error {
	l, gws, err := lab(4, bin)
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
		if err := g.Start(); err != nil {
			return err
		}
	}
	n1, n4 := l.Network(1), l.Network(4)
	const interval = 20 * time.Millisecond
	res.ProbeIntervalMS = float64(interval) / float64(time.Millisecond)
	for i := 0; i < kills; i++ {
		if err := installedVia(l, a, "10.4.0.0/16", "net2", 60*time.Second); err != nil {
			return err
		}
		if err := l.WaitPing(n1.HostNS, n4.HostAddr, 20*time.Second); err != nil {
			return err
		}
		time.Sleep(2 * time.Second) // let everything settle on the B path
		const count = 400           // 8 s at 50 pps
		done := make(chan string, 1)
		go func() {
			out, _ := l.Run(n1.HostNS, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.02", "-W", "1", n4.HostAddr.String())
			done <- out
		}()
		time.Sleep(2 * time.Second)
		if err := b.Kill(); err != nil {
			return err
		}
		out := <-done
		m := lossRE.FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("ping output: %s", out)
		}
		sent, _ := strconv.Atoi(m[1])
		recv, _ := strconv.Atoi(m[2])
		res.FailoverMS = append(res.FailoverMS, float64(sent-recv)*res.ProbeIntervalMS)
		if err := installedVia(l, a, "10.4.0.0/16", "net3", 10*time.Second); err != nil {
			return err
		}
		if err := b.Start(); err != nil {
			return err
		}
	}
	s := slices.Clone(res.FailoverMS)
	slices.Sort(s)
	res.FailoverMedian = s[len(s)/2]
	if len(s)%2 == 0 {
		res.FailoverMedian = (s[len(s)/2-1] + s[len(s)/2]) / 2
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
