package netlab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A hub-of-hubs of vgate gateways, all BGP, one namespace each (bench/scale
// measures it, the chaos lab test breaks it):
//
//	                   core (site 1)
//	     /        /          |          \        \
//	  hub 2    hub 3   ...  hub 11     (up to 10 hubs)
//	  / | \    / | \         / | \
//	spokes   spokes        spokes      (the rest, spread over the hubs)
//
// Site i's namespace is <prefix>-s<i>: wan0 (198.18.0.<i>/24) on the lab's
// underlay bridge, and its network 10.<i>.0.0/16, which 10.<i>.0.1 on lo
// stands for (enough to source and answer pings). Every site is at or
// under the 10-tunnel limit: with 101 sites the core has 10 hubs, each hub
// the core and 9 spokes.

// HubSite is one gateway of a hub-of-hubs.
type HubSite struct {
	Index int    `json:"index"`
	Role  string `json:"role"`             // core, hub, spoke
	Up    int    `json:"uplink,omitempty"` // the site it peers with above it; 0 for the core

	GW *Gateway `json:"-"`
}

// HubOfHubs returns sites 1..n: 1 is the core, 2..hubs+1 the hubs (at
// most 10, about √(n-1)), the rest spokes spread round-robin over the hubs.
// n must be 3..254 (HubOfHubsErr says why not).
func HubOfHubs(n int) (sites []*HubSite, hubs int) {
	hubs = min(10, int(math.Ceil(math.Sqrt(float64(n-1)))))
	sites = append(sites, &HubSite{Index: 1, Role: "core"})
	for h := range hubs {
		sites = append(sites, &HubSite{Index: 2 + h, Role: "hub", Up: 1})
	}
	for i := hubs + 2; i <= n; i++ {
		sites = append(sites, &HubSite{Index: i, Role: "spoke", Up: 2 + (i-hubs-2)%hubs})
	}
	return sites, hubs
}

// HubOfHubsErr says why n sites do not make a hub-of-hubs under the
// tunnel limit (nil when they do).
func HubOfHubsErr(n int) error {
	if n < 3 || n > 254 {
		return fmt.Errorf("netlab: %d sites: want 3..254", n)
	}
	sites, _ := HubOfHubs(n)
	for _, s := range sites {
		if s.Role != "hub" {
			continue
		}
		spokes := 0
		for _, t := range sites {
			if t.Up == s.Index && t.Role == "spoke" {
				spokes++
			}
		}
		if spokes+1 > 10 {
			return fmt.Errorf("netlab: hub %d would have %d tunnels (limit 10): %d sites are too many", s.Index, spokes+1, n)
		}
	}
	return nil
}

// SiteNetwork is site i's network.
func SiteNetwork(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)
}

// BuildHubOfHubs makes the sites' namespaces, their underlay and their
// gateways (bin), each with a BGP peering to its uplink and back, and
// writes their configs; nothing is started. Persistent keepalives are
// off (idle means idle: only what vgate itself sends).
func (l *Lab) BuildHubOfHubs(ctx context.Context, bin string, sites []*HubSite) error {
	batches := map[string][]string{} // namespace -> ip commands
	var order []string
	for _, s := range sites {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ns, err := l.AddNamespace(fmt.Sprintf("s%d", s.Index))
		if err != nil {
			return err
		}
		n := &Network{
			Index:           s.Index,
			GatewayNS:       ns,
			GatewayUnderlay: netip.AddrFrom4([4]byte{198, 18, 0, byte(s.Index)}),
			GatewayLAN:      netip.AddrFrom4([4]byte{10, byte(s.Index), 0, 1}),
			Space:           SiteNetwork(s.Index),
		}
		port := fmt.Sprintf("s%d", s.Index)
		order = append(order, ns)
		batches[ns] = []string{
			"link add wan0 type veth peer name " + port + " netns " + l.WAN,
			"addr add " + n.GatewayUnderlay.String() + "/24 dev wan0",
			"link set wan0 up",
			"addr add " + n.GatewayLAN.String() + "/32 dev lo",
		}
		batches[l.WAN] = append(batches[l.WAN], "link set "+port+" master br0 up")
		g, err := l.NewGateway(n, bin)
		if err != nil {
			return err
		}
		g.Spaces = []netip.Prefix{n.Space}
		s.GW = g
	}
	for _, ns := range append(order, l.WAN) {
		if err := ipBatch(ctx, ns, batches[ns]); err != nil {
			return err
		}
		if ns != l.WAN {
			if _, err := l.Run(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
				return err
			}
		}
	}
	for _, s := range sites {
		if s.Up != 0 {
			LinkBGP(s.GW, sites[s.Up-1].GW)
		}
	}
	for _, s := range sites {
		for i := range s.GW.Peerings {
			s.GW.Peerings[i].Keepalive = 0
		}
		if err := s.GW.WriteConfig(); err != nil {
			return err
		}
	}
	return nil
}

// ipBatch runs `ip -n ns -batch -`: one process for a namespace's commands.
func ipBatch(ctx context.Context, ns string, cmds []string) error {
	cmd := exec.CommandContext(ctx, "ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netlab: ip -batch in %s: %w: %s", ns, err, out)
	}
	return nil
}

var siteRouteRE = regexp.MustCompile(`(?m)^10\.(\d+)\.0\.0/16\b`)

// SiteRoutes lists the sites whose network has a vgate kernel route
// (protocol 76) in site s's namespace: one `ip` (run with -n, which is
// cheaper than ip netns exec) per call.
func (s *HubSite) SiteRoutes(ctx context.Context) (map[int]bool, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", s.GW.Net.GatewayNS, "-4", "route", "show", "proto", "76").Output()
	if err != nil {
		return nil, fmt.Errorf("netlab: routes of site %d: %w", s.Index, err)
	}
	have := map[int]bool{}
	for _, m := range siteRouteRE.FindAllStringSubmatch(string(out), -1) {
		i, _ := strconv.Atoi(m[1])
		have[i] = true
	}
	return have, nil
}

// PprofGet fetches path (e.g. /debug/pprof/goroutine?debug=1) from a
// gateway's VGATE_DEBUG_PPROF unix socket.
func PprofGet(ctx context.Context, sock, path string) ([]byte, error) {
	// One connection per request, closed after it: nothing stays open in
	// the gateway (its descriptors and goroutines are counted).
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://pprof"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("netlab: pprof socket %s (is VGATE_DEBUG_PPROF supported by this binary?): %w", sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("netlab: pprof %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// Goroutines is the number of goroutines of the running gateway, from its
// pprof socket (Pprof must be set before Start).
func (g *Gateway) Goroutines(ctx context.Context) (int, error) {
	if g.Pprof == "" {
		return 0, fmt.Errorf("netlab: gateway %s has no pprof socket", g.Name)
	}
	b, err := PprofGet(ctx, g.Pprof, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	// "goroutine profile: total 123"
	line, _, _ := strings.Cut(string(b), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(line, "goroutine profile: total "))
	if err != nil {
		return 0, fmt.Errorf("netlab: goroutine profile of %s: %q", g.Name, line)
	}
	return n, nil
}

// FDs is the number of open file descriptors of the running gateway.
func (g *Gateway) FDs() (int, error) {
	if g.proc == nil {
		return 0, fmt.Errorf("netlab: gateway %s not running", g.Name)
	}
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", g.proc.Pid()))
	if err != nil {
		return 0, err
	}
	return len(es), nil
}

// BGPSockets is `ss -tanp` for TCP port 179 in the gateway's namespace:
// every BGP connection with its state, queues and owner.
func (g *Gateway) BGPSockets(ctx context.Context) string {
	out, err := g.lab.RunContext(ctx, g.Net.GatewayNS, "ss", "-tanp", "( sport = :179 or dport = :179 )")
	if err != nil {
		return err.Error()
	}
	return out
}

// MemStats reads runtime.MemStats from the gateway's pprof socket (the
// debug=1 heap profile); gc runs a collection first, so HeapAlloc is the
// live heap.
func MemStats(ctx context.Context, sock string, gc bool) (map[string]uint64, error) {
	path := "/debug/pprof/heap?debug=1"
	if gc {
		path += "&gc=1"
	}
	b, err := PprofGet(ctx, sock, path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		// "# HeapAlloc = 1234"
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[2] == "=" {
			if v, err := strconv.ParseUint(f[3], 10, 64); err == nil {
				out[f[1]] = v
			}
		}
	}
	if _, ok := out["TotalAlloc"]; !ok {
		return nil, fmt.Errorf("netlab: pprof socket %s: no MemStats in heap profile", sock)
	}
	return out, nil
}
