package environ

import (
	"net/netip"
	"sync"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
)

// underlays holds the MTU of the underlay link toward each peering's
// endpoint, gathered before planning as endpoints does for names: the
// planner, which runs under the gateway lock on every RIB change, reads
// it and asks the kernel nothing. It is gathered when a config is started
// or reloaded, after names are resolved, and again while it runs
// (Facts.Run: with every reresolveEvery, and when an endpoint moves).
type underlays struct {
	probe func(dst netip.Addr) int // kernel.UnderlayMTU in production

	mu  sync.Mutex
	mtu map[netip.Addr]int
	at  time.Time // when it was last gathered
}

// underlayAddrs are the addresses the plan of cfg asks an underlay MTU
// for: each WireGuard peering's resolved endpoint, and the zero address
// (no endpoint: the default route's link, for point-to-site and dial-in
// tunnels).
func underlayAddrs(cfg *config.Config, resolve func(string) (netip.AddrPort, error)) []netip.Addr {
	out := []netip.Addr{{}}
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		if p.IsIPsec() || p.Endpoint == "" {
			continue
		}
		if ap, err := resolve(p.Endpoint); err == nil {
			out = append(out, ap.Addr())
		}
	}
	return out
}

// refresh gathers the MTUs toward addrs, outside the gateway lock, and
// reports whether any differs from what was known. With replace it forgets
// the others (a new config); without, it only adds and updates, so that a
// refresh for a config a reload just replaced loses nothing of the new one.
func (u *underlays) refresh(addrs []netip.Addr, replace bool) (changed bool) {
	got := make(map[netip.Addr]int, len(addrs))
	for _, a := range addrs {
		got[a] = u.probe(a)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if replace || u.mtu == nil {
		u.mtu = map[netip.Addr]int{}
	}
	for a, m := range got {
		if old, ok := u.mtu[a]; !ok || old != m {
			changed = true
		}
		u.mtu[a] = m
	}
	u.at = time.Now()
	return changed
}

// due reports whether the MTUs were last gathered more than d ago.
func (u *underlays) due(now time.Time, d time.Duration) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return now.Sub(u.at) >= d
}

// MTU is plan.Env.UnderlayMTU: what was gathered for dst. An address not
// gathered (none is expected) is asked of the kernel then.
func (u *underlays) MTU(dst netip.Addr) int {
	u.mu.Lock()
	m, ok := u.mtu[dst]
	u.mu.Unlock()
	if ok {
		return m
	}
	m = u.probe(dst)
	u.mu.Lock()
	if u.mtu == nil {
		u.mtu = map[netip.Addr]int{}
	}
	u.mtu[dst] = m
	u.mu.Unlock()
	return m
}
