package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/vgate-project/vgate/gateway/plan"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/p2s"
)

const connectUsage = `Usage: vgate connect [--interface NAME] FILE

Brings up the WireGuard client config FILE (as 'vgate client add' prints it,
wg-quick format) on this Linux machine: a wireguard-go device on a TUN
interface, the config's addresses on it and routes for its AllowedIPs.
Runs in the foreground; Ctrl-C (or SIGTERM) removes everything again.
Needs root (or CAP_NET_ADMIN).

`

func cmdConnect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("connect", stderr)
	ifname := fs.String("interface", "vgate0", "name of the TUN interface to create")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprint(stderr, connectUsage)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{2, errors.New("connect: want exactly one config FILE")}
	}
	log, err := newLogger(stderr, "text", *logLevel)
	if err != nil {
		return err
	}
	text, err := os.ReadFile(pos[0])
	if err != nil {
		return &exitError{1, err}
	}
	q, err := p2s.ParseQuick(string(text))
	if err != nil {
		return &exitError{1, fmt.Errorf("%s: %w", pos[0], err)}
	}
	c, err := connectUp(q, *ifname, log)
	if err != nil {
		return &exitError{1, err}
	}
	fmt.Fprintf(stdout, "vgate connect: %s up, address %s, routes %s; Ctrl-C disconnects\n",
		*ifname, joinP(q.Addresses), joinP(c.routes))
	if len(q.DNS) > 0 {
		fmt.Fprintf(stdout, "vgate connect: DNS servers %s are not set by vgate; point your resolver at them (e.g. resolvectl dns %s %s)\n",
			strings.Join(q.DNS, ", "), *ifname, strings.Join(q.DNS, " "))
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go c.watch(ctx, log)
	sig := <-sigs
	cancel()
	log.Info("disconnecting", "signal", sig.String())
	if err := c.down(); err != nil {
		return &exitError{1, err}
	}
	fmt.Fprintf(stdout, "vgate connect: %s removed\n", *ifname)
	return nil
}

func joinP(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// connection is a running built-in client.
type connection struct {
	dev       *device.Device
	h         *netlink.Handle
	ifname    string
	routes    []netip.Prefix
	hostRoute []*netlink.Route // keep the endpoint reachable outside the tunnel
}

// connectUp creates the TUN and device, and sets addresses and routes. On
// error everything done so far is undone.
func connectUp(q p2s.QuickConfig, ifname string, log *slog.Logger) (_ *connection, err error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	c := &connection{h: h, ifname: ifname}
	defer func() {
		if err != nil {
			c.down()
		}
	}()
	var endpoints []netip.Addr
	resolve := func(hp string) (netip.AddrPort, error) {
		ap, err := plan.ResolveUDP(hp)
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
		var ep netip.Addr
		if len(endpoints) > 0 {
			ep = endpoints[0]
		}
		mtu = dataplane.TunnelMTU(underlayMTU(h, ep), ep)
	}
	td, err := tun.CreateTUN(ifname, mtu)
	if err != nil {
		return nil, fmt.Errorf("create interface %s: %w", ifname, err)
	}
	c.dev = device.NewDevice(td, conn.NewStdNetBind(), &device.Logger{
		Verbosef: func(string, ...any) {},
		Errorf:   func(f string, a ...any) { log.Warn(fmt.Sprintf(f, a...)) },
	})
	if err := c.dev.IpcSet(uapi); err != nil {
		return nil, fmt.Errorf("configure device: %s", strings.ReplaceAll(err.Error(), q.PrivateKey.Hex(), "(redacted)"))
	}
	if err := c.dev.Up(); err != nil {
		return nil, fmt.Errorf("device up: %w", err)
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
			c.routes = append(c.routes, splitDefault(pre.Masked())...)
		}
	}
	// A route that covers an endpoint would send the tunnel's own packets
	// into the tunnel: pin the endpoint to its current path first.
	for _, ep := range endpoints {
		for _, r := range c.routes {
			if r.Contains(ep) {
				if err := c.pinEndpoint(ep); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	for _, r := range c.routes {
		nr := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: netipx.PrefixIPNet(r), Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC}
		if err := h.RouteReplace(nr); err != nil {
			return nil, fmt.Errorf("route %s dev %s: %w", r, ifname, err)
		}
	}
	return c, nil
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

func (c *connection) pinEndpoint(ep netip.Addr) error {
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

func underlayMTU(h *netlink.Handle, ep netip.Addr) int {
	if !ep.IsValid() {
		return 0
	}
	rs, err := h.RouteGet(net.IP(ep.AsSlice()))
	if err != nil || len(rs) == 0 {
		return 0
	}
	l, err := h.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return 0
	}
	return l.Attrs().MTU
}

// watch logs when the tunnel first connects.
func (c *connection) watch(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
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
		for _, l := range strings.Split(dump, "\n") {
			if v, ok := strings.CutPrefix(l, "last_handshake_time_sec="); ok && v != "0" {
				log.Info("connected: handshake with the gateway completed")
				return
			}
		}
	}
}

// down closes the device (which removes the interface, its addresses and
// routes) and the endpoint host routes.
func (c *connection) down() error {
	var errs []error
	if c.dev != nil {
		c.dev.Close()
	}
	for _, r := range c.hostRoute {
		if err := c.h.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove endpoint route %s: %w", r.Dst, err))
		}
	}
	c.h.Close()
	return errors.Join(errs...)
}
