package gateway

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vgate-project/vgate/api"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Tunnel probe timing: an ICMP echo to each BGP peer's tunnel address every
// probeInterval, through its tunnel; no answer for probeDeadAfter marks the
// tunnel dead (its BGP session is held down, which withdraws its routes).
// wireguard-go has no up/down signal and BGP's hold time is at least 3 s.
const (
	probeInterval  = 100 * time.Millisecond
	probeDeadAfter = time.Second
)

type probeTarget struct {
	name      string
	addr      netip.Addr
	since     time.Time // when probing began
	lastReply time.Time
	rtt       time.Duration
	alive     bool
	known     bool // alive has been decided at least once
}

// prober sends echo requests from the gateway's tunnel address and watches
// the replies. onChange is called (from the prober's goroutine) when a
// target turns alive or dead.
type prober struct {
	log      *slog.Logger
	src      netip.Addr
	id       uint16
	conn     *icmp.PacketConn
	onChange func(name string, alive bool, why string)

	mu      sync.Mutex
	targets map[netip.Addr]*probeTarget
	seq     uint16
}

func newProber(src netip.Addr, log *slog.Logger, onChange func(string, bool, string)) (*prober, error) {
	network := "ip4:icmp"
	if src.Is6() {
		network = "ip6:ipv6-icmp"
	}
	c, err := icmp.ListenPacket(network, src.String())
	if err != nil {
		return nil, err
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	return &prober{log: log, src: src, id: binary.BigEndian.Uint16(b[:]), conn: c, onChange: onChange, targets: map[netip.Addr]*probeTarget{}}, nil
}

// setTargets replaces the probed peerings (name -> tunnel address),
// keeping the state of those that stay.
func (p *prober) setTargets(want map[string]netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := map[netip.Addr]*probeTarget{}
	for name, a := range want {
		if a.Is4() != p.src.Is4() {
			continue
		}
		if t, ok := p.targets[a]; ok && t.name == name {
			next[a] = t
			continue
		}
		next[a] = &probeTarget{name: name, addr: a, since: time.Now()}
	}
	p.targets = next
}

func (p *prober) close() { p.conn.Close() }

func (p *prober) run(ctx context.Context) {
	go p.receive()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.send()
		p.evaluate(time.Now())
	}
}

func (p *prober) send() {
	p.mu.Lock()
	p.seq++
	seq := p.seq
	addrs := slices.Collect(maps.Keys(p.targets))
	p.mu.Unlock()
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if p.src.Is6() {
		typ = ipv6.ICMPTypeEchoRequest
	}
	body := make([]byte, 8)
	binary.BigEndian.PutUint64(body, uint64(time.Now().UnixNano()))
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(p.id), Seq: int(seq), Data: body}}
	b, err := msg.Marshal(nil) // the kernel computes the ICMPv6 checksum
	if err != nil {
		return
	}
	for _, a := range addrs {
		// Errors (no route yet, tunnel without handshake) are what the
		// probe detects: no reply.
		_, _ = p.conn.WriteTo(b, &net.IPAddr{IP: a.AsSlice()})
	}
}

func (p *prober) receive() {
	proto := 1
	if p.src.Is6() {
		proto = 58
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		if !ok || echo.ID != int(p.id) || (m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply) {
			continue
		}
		ia, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		a, _ := netip.AddrFromSlice(ia.IP)
		now := time.Now()
		p.mu.Lock()
		if t := p.targets[a.Unmap()]; t != nil {
			t.lastReply = now
			if len(echo.Data) >= 8 {
				t.rtt = now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(echo.Data))))
			}
		}
		p.mu.Unlock()
	}
}

// evaluate turns targets alive or dead and reports transitions.
func (p *prober) evaluate(now time.Time) {
	type change struct {
		name  string
		alive bool
		why   string
	}
	var changes []change
	p.mu.Lock()
	for _, t := range p.targets {
		ref := t.lastReply
		if ref.IsZero() {
			ref = t.since
		}
		alive := now.Sub(ref) < probeDeadAfter && !t.lastReply.IsZero()
		dead := now.Sub(ref) >= probeDeadAfter
		switch {
		case alive && (!t.known || !t.alive):
			t.alive, t.known = true, true
			changes = append(changes, change{t.name, true, ""})
		case dead && (!t.known || t.alive):
			t.alive, t.known = false, true
			why := fmt.Sprintf("tunnel probe: no reply from %s for %v", t.addr, probeDeadAfter)
			changes = append(changes, change{t.name, false, why})
		}
	}
	p.mu.Unlock()
	for _, c := range changes {
		if c.alive {
			p.log.Info("tunnel alive", "peering", c.name)
		} else {
			p.log.Warn("tunnel dead", "peering", c.name, "reason", c.why)
		}
		p.onChange(c.name, c.alive, c.why)
	}
}

func (p *prober) status() []api.ProbeStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []api.ProbeStatus{}
	for _, t := range p.targets {
		out = append(out, api.ProbeStatus{Peering: t.name, Address: t.addr, Alive: t.alive, LastReply: t.lastReply, RTT: t.rtt})
	}
	slices.SortFunc(out, func(a, b api.ProbeStatus) int { return a.Address.Compare(b.Address) })
	return out
}
