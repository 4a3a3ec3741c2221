package routing

// The prober's loop: Run wakes for what step says is due, receive reads
// the socket, handle takes each reply or request into its target's state,
// and report hands the transitions to the gateway.

import (
	"context"
	"net/netip"
	"time"
)

// sendNowLocked moves the next request of the targets f picks to now.
// p.mu is held.
func (p *Prober) sendNowLocked(f func(*probeTarget) bool) {
	now := time.Now()
	for _, t := range p.targets {
		if f(t) && t.nextSend.After(now) {
			t.nextSend = now
		}
	}
}

func (p *Prober) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run probes until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	go p.receive()
	p.timer = time.NewTimer(time.Hour)
	defer p.timer.Stop()
	for {
		// Replies the receiving goroutine has not taken yet (this
		// process was not scheduled) count before any verdict.
		_ = p.raw.Control(p.drainFn)
		next := p.step(time.Now())
		for _, ev := range p.events {
			p.report(ev)
		}
		p.timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-p.timer.C:
		case <-p.wake:
		}
	}
}

func (p *Prober) receive() {
	for {
		if err := p.raw.Read(p.recvFn); err != nil || p.recvErr != nil {
			return // closed
		}
		p.handle(p.recvBuf[:p.recvN], p.recvIn, time.Now())
	}
}

// handle takes one received packet, which came from in: a reply to our
// probe marks its target answered; a request from a peer's tunnel address
// marks that peer as running vgate, and one that says the peer stopped
// hearing this end (after it said it did) marks the tunnel lost. A request
// is no evidence that this end's packets arrive: the peer's verdict may be
// an idle tunnel's, seconds old. Either counts only from the peer's tunnel
// address (the packet's source as well as what it says) and through its
// tunnel's interface.
func (p *Prober) handle(b []byte, in probeIn, now time.Time) {
	m, ok := parseProbe(b, p.isV6)
	if !ok {
		return
	}
	p.unwire(&m, in.src)
	peer := m.from
	if m.reply {
		peer = m.to
	}
	if in.src != peer {
		return
	}
	wake := false
	var ev, drain ProbeEvent
	p.mu.Lock()
	if t := p.targets[peer]; t == nil || !p.arrivedVia(t, in.ifindex, now) {
		p.mu.Unlock()
		return
	}
	if m.reply {
		if t := p.targets[m.to]; t != nil && m.id == p.id && m.from == p.src {
			t.lastReply = now
			t.unanswered = 0
			t.peerLost = false
			t.rtt = now.Sub(time.Unix(0, m.sent))
			wake = !t.alive
		}
	} else if t := p.targets[m.from]; t != nil && m.to == p.src {
		t.peerASN, t.peerExpect = m.asn, m.expects
		if !t.vgate {
			t.vgate, t.plain = true, false
			ev = ProbeEvent{Peering: t.name, Vgate: true}
		}
		switch {
		case m.hears:
			t.peerLost = false
		case t.peerHears && t.alive:
			t.peerLost = true
			wake = true
		}
		t.peerHears = m.hears
		t.peerAvoids = m.avoids
		if t.peerDraining != m.draining {
			t.peerDraining = m.draining
			drain = ProbeEvent{Peering: t.name, Drain: true, Draining: m.draining}
		}
	}
	p.mu.Unlock()
	if ev.Vgate {
		p.report(ev)
	}
	if drain.Drain {
		p.report(drain)
	}
	if wake {
		p.poke()
	}
}

// unwire maps a probe's payload addresses, written as they cross the
// tunnel (by the peer in its request, by this end in the request a reply
// echoes), to this side's view when src's target has wire addresses.
func (p *Prober) unwire(m *probeMsg, src netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.targets[src]
	if t == nil {
		return
	}
	peer, local := &m.from, &m.to
	if m.reply {
		peer, local = &m.to, &m.from
	}
	if t.PeerWire.IsValid() && *peer == t.PeerWire {
		*peer = src
	}
	if t.LocalWire.IsValid() && *local == t.LocalWire {
		*local = p.src
	}
}

func (p *Prober) report(ev ProbeEvent) {
	switch {
	case ev.Vgate:
		p.log.Debug("tunnel probe: the peer runs vgate", "peering", ev.Peering)
	case ev.Drain:
		p.log.Info("tunnel probe: the peer says it drains", "peering", ev.Peering, "draining", ev.Draining)
	case ev.Plain:
		p.log.Info("tunnel probe: the peer answers but sends no probes: not vgate, this end dials", "peering", ev.Peering)
	case ev.Alive:
		p.log.Info("tunnel alive", "peering", ev.Peering)
	default:
		// Info: the gateway's "tunnel down" line (warn, reason probe_dead)
		// is the one to act on.
		p.log.Info("tunnel dead", "peering", ev.Peering, "reason", ev.Why)
	}
	if p.onEvent != nil {
		p.onEvent(ev)
	}
}
