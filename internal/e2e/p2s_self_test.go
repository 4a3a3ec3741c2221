package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/internal/netlab"
)

// The gateway's own services are closed to point-to-site clients, even
// though its addresses lie inside what their group allows:
//
//	lt1 alice (devs: allow 10.1.0.0/16)
//	     |
//	  198.18.0.0/24 underlay bridge
//	     |
//	gw1 (vgate, P2S; BGP on 10.1.255.254:179, metrics on 10.1.255.254:9475,
//	     |  a test DNS responder on 10.1.255.254:53, a test "ssh" on :22)
//	h1 10.1.0.2
//
// alice reaches h1 and pings the gateway; BGP, metrics and port 22 on
// the tunnel address and on the LAN address 10.1.0.1 time out; DNS
// answers because point_to_site.dns lists the tunnel address; port 22
// opens once gateway_services lists tcp/22 and the config is reloaded.
const p2sSelfExtra = `point_to_site:
  listen_port: 51821
  endpoint: 198.18.0.1:51821
  address_pool: [172.16.201.0/24]
  max_clients: 4
  dns: [10.1.255.254]
  groups:
    - name: devs
      allow: [10.1.0.0/16, fd00:1::/48]
`

func TestP2SSelf(t *testing.T) {
	if _, err := os.Stat("/usr/bin/wireguard-go"); err != nil {
		t.Skip("Debian's wireguard-go is not installed (scripts/deps.sh installs it)")
	}
	lab, gws := site(t, 1)
	g1 := gws[0]
	n1 := lab.Network(1)
	tunAddr := g1.TunnelAddress
	g1.ASN = netlab.ASNOf(n1) // BGP listens on the tunnel address, port 179
	g1.MetricsListen = netip.AddrPortFrom(tunAddr, 9475).String()
	g1.Extra = p2sSelfExtra
	start(t, g1)

	// Services of the gateway namespace, run by this test: DNS on the
	// tunnel address (UDP and TCP) and a TCP service on port 22.
	stopDNS := serveDNS(t, n1.GatewayNS, netip.AddrPortFrom(tunAddr, 53))
	defer stopDNS()
	stopSSH := serveTCP(t, n1.GatewayNS, netip.AddrPortFrom(netip.IPv4Unspecified(), 22))
	defer stopSSH()

	// Each service answers inside the gateway's namespace, so a timeout
	// from the laptop can only be the policy.
	services := []netip.AddrPort{
		netip.AddrPortFrom(tunAddr, 179), netip.AddrPortFrom(tunAddr, 9475), netip.AddrPortFrom(tunAddr, 22),
		netip.AddrPortFrom(n1.GatewayLAN, 22), netip.AddrPortFrom(tunAddr, 53),
	}
	for _, ap := range services {
		if err := dialTCP(n1.GatewayNS, ap, 5*time.Second); err != nil {
			t.Fatalf("%s does not answer inside the gateway: %v", ap, err)
		}
	}
	if err := queryDNS(n1.GatewayNS, "udp", netip.AddrPortFrom(tunAddr, 53)); err != nil {
		t.Fatalf("test DNS responder does not answer inside the gateway: %v", err)
	}

	out, err := g1.CLI("client", "add", "alice", "--group", "devs", "--socket", g1.Socket)
	if err != nil {
		t.Fatalf("client add: %v\n%s", err, out)
	}
	alice, err := lab.AddLaptop(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.UpStock(out); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitPing(alice.NS, n1.HostAddr, 20*time.Second); err != nil {
		t.Fatalf("alice cannot reach host 1: %v", err)
	}
	if err := lab.TCPTransfer(alice.NS, n1.HostNS, n1.HostAddr, 1<<20); err != nil {
		t.Fatalf("TCP alice -> host 1: %v", err)
	}
	// Ping is open by default, on the tunnel and the LAN address.
	for _, a := range []netip.Addr{tunAddr, n1.GatewayLAN} {
		if err := lab.WaitPing(alice.NS, a, 10*time.Second); err != nil {
			t.Fatalf("alice cannot ping the gateway at %s: %v", a, err)
		}
	}
	before := gatewayServiceDenials(t, g1)
	closed := func(ap netip.AddrPort) {
		t.Helper()
		err := dialTCP(alice.NS, ap, 2*time.Second)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("alice -> %s: %v, want a timeout (dropped by the gateway)", ap, err)
		}
	}
	closed(netip.AddrPortFrom(tunAddr, 179))  // BGP
	closed(netip.AddrPortFrom(tunAddr, 9475)) // metrics
	closed(netip.AddrPortFrom(tunAddr, 22))
	closed(netip.AddrPortFrom(n1.GatewayLAN, 22))
	if after := gatewayServiceDenials(t, g1); after <= before {
		t.Fatalf("gateway_service denials %d -> %d", before, after)
	}
	// DNS on a dns address of the gateway is open, over UDP and TCP.
	for _, network := range []string{"udp", "tcp"} {
		if err := queryDNS(alice.NS, network, netip.AddrPortFrom(tunAddr, 53)); err != nil {
			t.Fatalf("alice's DNS query over %s to the gateway: %v", network, err)
		}
	}

	// Opening tcp/22 to devs: reachable after a reload, BGP still closed.
	g1.Extra = p2sSelfExtra + "      gateway_services: [tcp/22]\n"
	if err := g1.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	if out, err := g1.CLI("reload", "--socket", g1.Socket); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	for _, ap := range []netip.AddrPort{netip.AddrPortFrom(tunAddr, 22), netip.AddrPortFrom(n1.GatewayLAN, 22)} {
		if err := dialTCP(alice.NS, ap, 5*time.Second); err != nil {
			t.Fatalf("alice -> %s after opening tcp/22: %v", ap, err)
		}
	}
	closed(netip.AddrPortFrom(tunAddr, 179))

	// A bad entry is refused with the group, the value and the line.
	g1.Extra = p2sSelfExtra + "      gateway_services: [tcp/22, tcp/70000]\n"
	if err := g1.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	out, err = g1.CLI("check", "--config", g1.ConfigPath)
	if err == nil || !strings.Contains(out, `point_to_site.groups[0].gateway_services[1]: group "devs": "tcp/70000" is not a gateway service`) ||
		!strings.Contains(out, g1.ConfigPath+":") {
		t.Fatalf("check of a bad gateway_services: %v\n%s", err, out)
	}
}

// A corrupt registry disables point-to-site, with the reason in status,
// and leaves the file alone; the site-to-site tunnels run. Once the file
// is fixed, a reload starts point-to-site.
func TestPointToSiteCorruptRegistry(t *testing.T) {
	lab, gws := site(t, 2)
	g1, g2 := gws[0], gws[1]
	netlab.Mesh(g1, g2)
	g1.Extra = p2sSelfExtra
	const garbage = `{"version": 1, "clients": [{"name": "alice", "public_key": `
	reg := filepath.Join(g1.StateDir, p2s.RegistryFile)
	if err := os.MkdirAll(g1.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reg, []byte(garbage), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, g1, g2)
	mustReach(t, lab, lab.Network(1), lab.Network(2))

	st, err := g1.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.P2S == nil || !strings.Contains(st.P2S.Disabled, p2s.ErrCorruptRegistry.Error()) || !strings.Contains(st.P2S.Disabled, reg) {
		t.Fatalf("status point_to_site: %+v", st.P2S)
	}
	if out, err := g1.CLI("client", "add", "alice", "--group", "devs", "--socket", g1.Socket); err == nil || !strings.Contains(out, "disabled") {
		t.Fatalf("client add with P2S disabled: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(reg); string(b) != garbage {
		t.Fatalf("corrupt registry rewritten: %q", b)
	}
	if _, err := lab.Run(lab.Network(1).GatewayNS, "ip", "link", "show", p2s.IfName); err == nil {
		t.Fatal("P2S interface exists although point-to-site is disabled")
	}

	// Moved away: a reload brings point-to-site up.
	if err := os.Rename(reg, reg+".bad"); err != nil {
		t.Fatal(err)
	}
	if out, err := g1.CLI("reload", "--socket", g1.Socket); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if st, err := g1.Status(); err != nil || st.P2S == nil || st.P2S.Disabled != "" || st.P2S.Interface != p2s.IfName {
		t.Fatalf("after fixing the registry: %+v %v", st.P2S, err)
	}
	if out, err := g1.CLI("client", "add", "alice", "--group", "devs", "--socket", g1.Socket); err != nil {
		t.Fatalf("client add after fixing the registry: %v\n%s", err, out)
	}
	mustReach(t, lab, lab.Network(1), lab.Network(2))
}

func gatewayServiceDenials(t *testing.T, g *netlab.Gateway) uint64 {
	t.Helper()
	st, err := g.Status()
	if err != nil || st.P2S == nil {
		t.Fatalf("status: %+v %v", st.P2S, err)
	}
	return st.P2S.Packets[p2s.DenyGatewayService.String()]
}

// dialTCP connects from namespace ns to ap and closes the connection.
func dialTCP(ns string, ap netip.AddrPort, timeout time.Duration) error {
	var c net.Conn
	err := netlab.InNS(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", ap.String(), timeout)
		return err
	})
	if err == nil {
		c.Close()
	}
	return err
}

// serveTCP accepts connections at ap inside namespace ns and closes them
// at once, until the returned stop is called.
func serveTCP(t *testing.T, ns string, ap netip.AddrPort) (stop func()) {
	t.Helper()
	var ln net.Listener
	if err := netlab.InNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", ap.String())
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", ap, ns, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return func() { ln.Close(); <-done }
}

// serveDNS is a tiny DNS responder at ap inside namespace ns, over UDP
// and TCP: it answers every query with its own question and RCODE
// NXDOMAIN, which is all a client needs to see that DNS gets through.
func serveDNS(t *testing.T, ns string, ap netip.AddrPort) (stop func()) {
	t.Helper()
	var pc net.PacketConn
	if err := netlab.InNS(ns, func() (err error) {
		pc, err = net.ListenPacket("udp", ap.String())
		return err
	}); err != nil {
		t.Fatalf("listen on udp %s in %s: %v", ap, ns, err)
	}
	var ln net.Listener
	if err := netlab.InNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", ap.String())
		return err
	}); err != nil {
		pc.Close()
		t.Fatalf("listen on tcp %s in %s: %v", ap, ns, err)
	}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 12 {
				pc.WriteTo(dnsAnswer(buf[:n]), from)
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, int(l[0])<<8|int(l[1]))
				if _, err := io.ReadFull(c, q); err != nil || len(q) < 12 {
					return
				}
				a := dnsAnswer(q)
				c.Write(append([]byte{byte(len(a) >> 8), byte(len(a))}, a...))
			}()
		}
	}()
	return func() { pc.Close(); ln.Close(); <-done; <-done }
}

// dnsAnswer is q turned into a response: QR set, RCODE 3 (NXDOMAIN).
func dnsAnswer(q []byte) []byte {
	a := bytes.Clone(q)
	a[2] |= 0x80
	a[3] = a[3]&0xf0 | 3
	return a
}

// dnsQuery is a query for example.internal A with id.
func dnsQuery(id uint16) []byte {
	q := []byte{byte(id >> 8), byte(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	q = append(q, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 8, 'i', 'n', 't', 'e', 'r', 'n', 'a', 'l', 0, 0, 1, 0, 1)
	return q
}

// queryDNS sends one query from namespace ns to ap over network ("udp"
// or "tcp") and checks the response matches it.
func queryDNS(ns, network string, ap netip.AddrPort) error {
	var c net.Conn
	if err := netlab.InNS(ns, func() (err error) {
		c, err = net.DialTimeout(network, ap.String(), 3*time.Second)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	q := dnsQuery(0x5a17)
	resp := make([]byte, 512)
	var n int
	var err error
	if network == "tcp" {
		if _, err = c.Write(append([]byte{0, byte(len(q))}, q...)); err != nil {
			return err
		}
		var l [2]byte
		if _, err = io.ReadFull(c, l[:]); err != nil {
			return err
		}
		n = int(l[0])<<8 | int(l[1])
		if n > len(resp) {
			return fmt.Errorf("DNS response of %d bytes", n)
		}
		_, err = io.ReadFull(c, resp[:n])
	} else {
		if _, err = c.Write(q); err != nil {
			return err
		}
		n, err = c.Read(resp)
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(resp[:n], dnsAnswer(q)) {
		return fmt.Errorf("DNS response % x does not answer query % x", resp[:n], q)
	}
	return nil
}
