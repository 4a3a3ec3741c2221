package routing

// What the gateway tells the prober: the peerings to probe, and what the
// requests say of this gateway's draining.

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// SetTargets replaces the probed peerings (name -> target), keeping the
// state of those that stay.
func (p *Prober) SetTargets(want map[string]ProbeTarget) {
	p.mu.Lock()
	next := map[netip.Addr]*probeTarget{}
	now := time.Now()
	for name, w := range want {
		a := w.Address.Unmap()
		if a.Is4() != p.src.Is4() || w.Interval <= 0 || w.Multiplier <= 0 {
			continue
		}
		var ifindex int32
		if p.ifIndex != nil {
			ifindex = p.ifIndex(w.Interface)
		}
		if t, ok := p.targets[a]; ok && t.name == name {
			t.ProbeTarget = w
			t.ifindex, t.ifChecked = ifindex, now
			next[a] = t
			continue
		}
		var sa unix.Sockaddr
		if a.Is4() {
			sa = &unix.SockaddrInet4{Addr: a.As4()}
		} else {
			sa = &unix.SockaddrInet6{Addr: a.As16()}
		}
		next[a] = &probeTarget{name: name, ProbeTarget: w, ifindex: ifindex, ifChecked: now, sa: sa, since: now, nextSend: now}
	}
	p.targets = next
	p.mu.Unlock()
	p.poke()
}

// SetDraining makes every request say that this gateway drains (or no
// longer does); the next ones go at once, so that peers learn it within a
// round trip rather than an idle interval.
func (p *Prober) SetDraining(on bool) {
	p.mu.Lock()
	changed := p.draining != on
	if changed {
		p.draining = on
		p.sendNowLocked(func(*probeTarget) bool { return true })
	}
	p.mu.Unlock()
	if changed {
		p.poke()
	}
}

// SetAvoiding makes the requests to the peerings in avoid say that this
// gateway's routes no longer go through them (they drain); to the others,
// that they may. Changed targets get a request at once.
func (p *Prober) SetAvoiding(avoid map[string]bool) {
	p.mu.Lock()
	changed := false
	p.sendNowLocked(func(t *probeTarget) bool {
		if t.avoid == avoid[t.name] {
			return false
		}
		t.avoid, changed = avoid[t.name], true
		return true
	})
	p.mu.Unlock()
	if changed {
		p.poke()
	}
}
