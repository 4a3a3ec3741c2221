package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/wgspec"
	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// TunnelSpec is the desired state of one tunnel.
type TunnelSpec struct {
	Name   string // peering name
	IfName string // TUN interface name
	MTU    int
	Peer   wgspec.PeerSpec
}

// TunnelPlan is what Plane.Set does to move from the running tunnels to the
// desired ones. Unchanged tunnels appear nowhere: they are not touched.
type TunnelPlan struct {
	Create   []TunnelSpec // new peerings
	Update   []TunnelSpec // same device, peer attributes change (by diff)
	Recreate []TunnelSpec // interface name or MTU change: a new device
	Remove   []string     // peerings gone
}

// Empty reports whether the plan changes nothing.
func (p TunnelPlan) Empty() bool {
	return len(p.Create)+len(p.Update)+len(p.Recreate)+len(p.Remove) == 0
}

// PlanTunnels decides how to reach want from have (keyed by peering name).
func PlanTunnels(have map[string]TunnelSpec, want []TunnelSpec) TunnelPlan {
	var p TunnelPlan
	seen := make(map[string]bool, len(want))
	for _, w := range want {
		seen[w.Name] = true
		h, ok := have[w.Name]
		switch {
		case !ok:
			p.Create = append(p.Create, w)
		case h.IfName != w.IfName || h.MTU != w.MTU:
			p.Recreate = append(p.Recreate, w)
		case !h.Peer.Equal(w.Peer):
			p.Update = append(p.Update, w)
		}
	}
	for name := range have {
		if !seen[name] {
			p.Remove = append(p.Remove, name)
		}
	}
	slices.Sort(p.Remove)
	return p
}

// Plane runs the set of tunnels of one gateway. Its effects go through
// three seams so that it runs unchanged over in-memory TUNs and binds in
// tests: NewBind (in production a wgbind.Mux), NewTUN (tun.CreateTUN) and
// LinkUp (netlink).
type Plane struct {
	NewBind func(name string) conn.Bind
	NewTUN  func(ifname string, mtu int) (tun.Device, error)
	LinkUp  func(ifname string, mtu int) error
	Log     *slog.Logger

	mu      sync.Mutex
	priv    keys.PrivateKey
	tunnels map[string]*Tunnel
	demand  map[string]*atomic.Uint64 // per peering name (demand.go)
}

// SetPrivateKey sets the gateway key used by all tunnels, current and new.
func (p *Plane) SetPrivateKey(k keys.PrivateKey) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.priv == k {
		return nil
	}
	p.priv = k
	var errs []error
	for _, t := range p.tunnels {
		errs = append(errs, t.setPrivateKey(k))
	}
	return errors.Join(errs...)
}

func (p *Plane) specs() map[string]TunnelSpec {
	m := make(map[string]TunnelSpec, len(p.tunnels))
	for name, t := range p.tunnels {
		m[name] = TunnelSpec{Name: name, IfName: t.ifname, MTU: t.mtu, Peer: t.Peer()}
	}
	return m
}

// Set makes the running tunnels exactly want, touching only what differs.
// New tunnels are created first; if one cannot be created, those created by
// this call are closed again and nothing else is changed.
func (p *Plane) Set(want []TunnelSpec) (TunnelPlan, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tunnels == nil {
		p.tunnels = make(map[string]*Tunnel)
	}
	plan := PlanTunnels(p.specs(), want)

	var created []*Tunnel
	for _, s := range plan.Create {
		t, err := p.open(s)
		if err != nil {
			for _, c := range created {
				c.close()
			}
			return plan, err
		}
		created = append(created, t)
	}
	for _, t := range created {
		p.tunnels[t.name] = t
		p.Log.Info("tunnel created", "peering", t.name, "interface", t.ifname, "mtu", t.mtu, "endpoint", endpointString(t.peer))
	}

	var errs []error
	for _, s := range plan.Update {
		if err := p.tunnels[s.Name].update(s.Peer); err != nil {
			errs = append(errs, err)
			continue
		}
		p.Log.Info("tunnel updated", "peering", s.Name, "endpoint", endpointString(s.Peer), "allowed_ips", len(s.Peer.AllowedIPs))
	}
	for _, name := range plan.Remove {
		p.tunnels[name].close()
		delete(p.tunnels, name)
		p.Log.Info("tunnel removed", "peering", name)
	}
	for _, s := range plan.Recreate {
		p.tunnels[s.Name].close()
		delete(p.tunnels, s.Name)
		t, err := p.open(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.tunnels[s.Name] = t
		p.Log.Info("tunnel recreated", "peering", s.Name, "interface", t.ifname, "mtu", t.mtu)
	}
	return plan, errors.Join(errs...)
}

func endpointString(s wgspec.PeerSpec) string {
	if !s.Endpoint.IsValid() {
		return "(dial-in only)"
	}
	return s.Endpoint.String()
}

func (p *Plane) open(s TunnelSpec) (*Tunnel, error) {
	if p.priv.IsZero() {
		return nil, fmt.Errorf("tunnel %s: no private key set", s.Name)
	}
	td, err := p.NewTUN(s.IfName, s.MTU)
	if err != nil {
		return nil, fmt.Errorf("tunnel %s: create interface %s: %w", s.Name, s.IfName, err)
	}
	t, err := openTunnel(s.Name, s.IfName, s.MTU, td, p.NewBind(s.Name), p.priv, s.Peer, p.demandLocked(s.Name), p.Log)
	if err != nil {
		return nil, err // the device closed the TUN
	}
	if p.LinkUp != nil {
		if err := p.LinkUp(s.IfName, s.MTU); err != nil {
			t.close()
			return nil, fmt.Errorf("tunnel %s: %w", s.Name, err)
		}
	}
	return t, nil
}

// Tunnel returns the running tunnel of a peering, or nil.
func (p *Plane) Tunnel(name string) *Tunnel {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tunnels[name]
}

// Tunnels returns the running tunnels sorted by peering name.
func (p *Plane) Tunnels() []*Tunnel {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Tunnel, 0, len(p.tunnels))
	for _, t := range p.tunnels {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Tunnel) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	return out
}

// Close stops every tunnel.
func (p *Plane) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, t := range p.tunnels {
		t.close()
		delete(p.tunnels, name)
	}
}

// CreateTUN is the production NewTUN: a Linux TUN with wireguard-go's
// offloads (virtio-net header, GSO/GRO) when the kernel supports them.
//
// With offloads, wireguard-go reads the TUN in batches of 128 and keeps a
// 64 KiB buffer per slot for as long as the read waits: 8 MiB per tunnel
// at idle. One read returns the segments of one GSO packet, which at a
// normal MSS are at most 48 (64 KiB / 1,360 bytes), so the batch is
// capped at MaxTUNBatch and the kernel is told (the link's gso_max_segs)
// never to build a GSO packet with more segments than that: half the
// buffers, no packet dropped as "too many segments". If the link cannot
// be capped, the full batch stays.
func CreateTUN(ifname string, mtu int) (tun.Device, error) {
	d, err := tun.CreateTUN(ifname, mtu)
	if err != nil || d.BatchSize() <= MaxTUNBatch {
		return d, err
	}
	l, err := netlink.LinkByName(ifname)
	if err == nil {
		err = netlink.LinkSetGSOMaxSegs(l, MaxTUNBatch)
	}
	if err != nil {
		return d, nil
	}
	return batchCapTUN{d}, nil
}

// MaxTUNBatch is the most packets a tunnel device reads from its TUN at
// once (CreateTUN).
const MaxTUNBatch = 64

// batchCapTUN reports a batch size of at most MaxTUNBatch.
type batchCapTUN struct{ tun.Device }

func (t batchCapTUN) BatchSize() int { return min(t.Device.BatchSize(), MaxTUNBatch) }
