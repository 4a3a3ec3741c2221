// Package laptop is vgate's built-in Linux point-to-site client (`vgate
// connect`): it brings a wg-quick client config up as a wireguard-go
// device on a TUN interface, with the config's addresses and routes for
// its AllowedIPs, and takes it all down again. It reuses the gateway's
// data-plane code: the config parser and UAPI text of gateway/p2s, the MTU
// rule of gateway/dataplane and its WireGuard stats parser.
package laptop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/vishvananda/netlink"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/gateway/wgspec"
)

// Conn is a running client connection.
type Conn struct {
	// Addresses are the interface's addresses, Routes the routes through
	// it (a default route split in halves), DNS the config's DNS servers
	// (set by the caller: see PlanResolver).
	Addresses []netip.Prefix
	Routes    []netip.Prefix
	DNS       []string

	dev       *device.Device
	gateway   keys.PublicKey // the first [Peer]: the gateway
	bind      *relay.Bind
	relay     *relay.Client // nil without Options.RelayURL
	h         *netlink.Handle
	ifname    string
	hostRoute []*netlink.Route // keep the endpoint reachable outside the tunnel
}

// Options are what `vgate connect` adds to a client config.
type Options struct {
	// RelayURL and RelayPin name a relay (`vgate relay`, the gateway's
	// point_to_site.relay) to fall back to when UDP to the gateway does
	// not get through, as a gateway's peering relay does (gateway/relay).
	RelayURL, RelayPin string
}

// Up parses the wg-quick config text and brings it up on a new TUN
// interface ifname. On error everything done so far is undone; the error
// never holds the private key.
func Up(text, ifname string, log *slog.Logger) (*Conn, error) {
	return UpOptions(text, ifname, log, Options{})
}

// UpOptions is Up with Options.
func UpOptions(text, ifname string, log *slog.Logger, o Options) (_ *Conn, err error) {
	q, err := p2s.ParseQuick(text)
	if err != nil {
		return nil, err
	}
	if o.RelayURL != "" && len(q.Peers) != 1 {
		return nil, fmt.Errorf("--relay needs a config with exactly one [Peer] (the gateway), not %d", len(q.Peers))
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	c := &Conn{h: h, ifname: ifname, Addresses: q.Addresses, DNS: q.DNS}
	if len(q.Peers) > 0 {
		c.gateway = q.Peers[0].PublicKey
	}
	defer func() {
		if err != nil {
			c.Down()
		}
	}()
	var endpoints []netip.Addr
	resolve := func(hp string) (netip.AddrPort, error) {
		ap, err := dataplane.ResolveUDP(hp)
		if err == nil {
			endpoints = append(endpoints, ap.Addr())
		}
		return ap, err
	}
	uapi, err := q.UAPI(resolve)
	if err != nil {
		return nil, err
	}
	mtu := q.MTU
	if mtu == 0 {
		mtu, err = tunnelMTU(endpoints) // before the relay's address joins them
		if err != nil {
			return nil, err
		}
	}
	td, err := tun.CreateTUN(ifname, mtu)
	if err != nil {
		return nil, fmt.Errorf("create interface %s: %w", ifname, err)
	}
	c.bind = relay.NewBind(conn.NewStdNetBind(), nil)
	if o.RelayURL != "" {
		c.relay, err = relay.NewClient(o.RelayURL, o.RelayPin, q.PrivateKey, log.With("component", "relay"))
		if err != nil {
			return nil, fmt.Errorf("--relay: %w", err)
		}
		c.bind.SetRelay(c.relay, q.Peers[0].PublicKey)
		// The relay's address stays outside the tunnel, as the endpoint does.
		if a, err := relayAddr(o.RelayURL); err == nil {
			endpoints = append(endpoints, a)
		}
	}
	c.dev = device.NewDevice(td, c.bind, dataplane.DeviceLogger(log))
	if err := c.dev.IpcSet(uapi); err != nil {
		return nil, fmt.Errorf("configure device: %w", dataplane.IPCErr(err))
	}
	if err := c.dev.Up(); err != nil {
		return nil, fmt.Errorf("device up: %w", err)
	}
	if o.RelayURL != "" {
		dev, pub := c.dev, device.NoisePublicKey(q.Peers[0].PublicKey)
		c.bind.SetProbe(func() {
			if p := dev.LookupPeer(pub); p != nil {
				_ = p.SendHandshakeInitiation(false)
			}
		})
	}
	l, err := h.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	for _, a := range q.Addresses {
		if err := h.AddrReplace(l, &netlink.Addr{IPNet: netipx.PrefixIPNet(a)}); err != nil {
			return nil, fmt.Errorf("address %s: %w", a, err)
		}
	}
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return nil, fmt.Errorf("interface %s: mtu %d: %w", ifname, mtu, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("interface %s: up: %w", ifname, err)
	}
	for _, p := range q.Peers {
		for _, pre := range p.AllowedIPs {
			c.Routes = append(c.Routes, splitDefault(pre.Masked())...)
		}
	}
	// A route that covers an endpoint would send the tunnel's own packets
	// into the tunnel: pin the endpoint to its current path first.
	for _, ep := range endpoints {
		for _, r := range c.Routes {
			if r.Contains(ep) {
				if err := c.pinEndpoint(ep); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	for _, r := range c.Routes {
		nr := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: netipx.PrefixIPNet(r), Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC}
		if err := h.RouteReplace(nr); err != nil {
			return nil, fmt.Errorf("route %s dev %s: %w", r, ifname, err)
		}
	}
	return c, nil
}

// tunnelMTU is the gateway's MTU rule (wgspec.TunnelMTU over the
// kernel's underlay MTU toward the first endpoint).
func tunnelMTU(endpoints []netip.Addr) (int, error) {
	var ep netip.Addr
	if len(endpoints) > 0 {
		ep = endpoints[0]
	}
	k, err := kernel.New()
	if err != nil {
		return 0, err
	}
	defer k.Close()
	return wgspec.TunnelMTU(k.UnderlayMTU(ep), ep), nil
}

// splitDefault replaces a default route by its two halves, which win over
// the existing default route without replacing it.
func splitDefault(p netip.Prefix) []netip.Prefix {
	if p.Bits() != 0 {
		return []netip.Prefix{p}
	}
	if p.Addr().Is4() {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1")}
	}
	return []netip.Prefix{netip.MustParsePrefix("::/1"), netip.MustParsePrefix("8000::/1")}
}

func (c *Conn) pinEndpoint(ep netip.Addr) error {
	rs, err := c.h.RouteGet(net.IP(ep.AsSlice()))
	if err != nil || len(rs) == 0 {
		return fmt.Errorf("endpoint %s: no route to it: %v", ep, err)
	}
	r := &netlink.Route{
		LinkIndex: rs[0].LinkIndex, Gw: rs[0].Gw,
		Dst:      netipx.PrefixIPNet(netip.PrefixFrom(ep, ep.BitLen())),
		Protocol: unix.RTPROT_STATIC,
	}
	if err := c.h.RouteReplace(r); err != nil {
		return fmt.Errorf("endpoint %s: host route: %w", ep, err)
	}
	c.hostRoute = append(c.hostRoute, r)
	return nil
}

// Watch reports, through say, when the tunnel first connects (a
// handshake completed), when the gateway stops answering and when it
// answers again (Answers decides; Watch samples the gateway peer every
// WatchSample and sends the probes). It returns when ctx ends or the
// device is gone.
func (c *Conn) Watch(ctx context.Context, say func(AnswerEvent, string)) {
	t := time.NewTicker(WatchSample)
	defer t.Stop()
	var a Answers
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		dump, err := c.dev.IpcGet()
		if err != nil {
			return
		}
		stats, _ := dataplane.ParseDump(dump) // a bad counter leaves the rest readable
		st := stats[c.gateway]
		if st == nil {
			return
		}
		now := time.Now()
		ev, probe := a.Observe(now, st.RxBytes, st.LastHandshake)
		switch ev {
		case Connected:
			say(ev, "connected: handshake with the gateway completed")
		case Silent:
			if a.EverConnected() {
				say(ev, fmt.Sprintf("the gateway stopped answering (nothing from it for %s); traffic through the tunnel fails until it answers again (revoked, down, or the path is blocked?)",
					a.Quiet(now).Round(time.Second)))
			} else {
				say(ev, "the gateway does not answer handshakes: is its endpoint reachable over UDP, and is this client registered there?")
			}
		case Answering:
			say(ev, "the gateway answers again")
		}
		if probe {
			if p := c.dev.LookupPeer(device.NoisePublicKey(c.gateway)); p != nil {
				_ = p.SendHandshakeInitiation(false)
			}
		}
	}
}

// Down closes the device (which removes the interface, its addresses and
// routes) and the endpoint host routes.
func (c *Conn) Down() error {
	var errs []error
	if c.dev != nil {
		c.dev.Close()
	}
	if c.relay != nil {
		c.bind.SetRelay(nil, [32]byte{})
		c.relay.Close()
	}
	for _, r := range c.hostRoute {
		if err := c.h.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove endpoint route %s: %w", r.Dst, err))
		}
	}
	c.h.Close()
	return errors.Join(errs...)
}

// Path is how the connection's datagrams travel now: "direct" (UDP) or
// "relay".
func (c *Conn) Path() string { return c.bind.Path() }

// relayAddr resolves the host of a relay URL to one address.
func relayAddr(rawURL string) (netip.Addr, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return netip.Addr{}, err
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	ap, err := dataplane.ResolveUDP(net.JoinHostPort(u.Hostname(), port))
	return ap.Addr(), err
}
