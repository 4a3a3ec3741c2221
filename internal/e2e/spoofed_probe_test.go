package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// host1 ── gw1 (AS65001) ══ WireGuard + BGP ══ gw2 (AS65002) ── host2
//
//	attacker 198.18.0.250 on the WAN bridge, routing gw1's tunnel address
//	to gw1's underlay address
//
// The tunnel probe (routing/probe.go) takes a vgate peer's word that it
// no longer hears this end and declares the tunnel dead at once. A host
// on the underlay link (or in the local network) that sends gw1's tunnel
// address an echo request shaped like gw2's probe, saying so — from its
// own address or from gw2's tunnel address, spoofed — must change
// nothing: the tunnel stays up, BGP established, host traffic flows.
func TestSpoofedProbe(t *testing.T) {
	lab, gws := site(t, 2)
	g1, g2 := gws[0], gws[1]
	netlab.LinkBGP(g1, g2)
	start(t, gws...)
	n1, n2 := lab.Network(1), lab.Network(2)
	waitInstalled(t, g1, "10.2.0.0/16", "net2")
	waitInstalled(t, g2, "10.1.0.0/16", "net1")
	mustReach(t, lab, n1, n2)
	waitFor(t, "gw1's probe of net2 alive and vgate", 20*time.Second, func() (bool, string) {
		st, err := g1.BGP()
		if err != nil {
			return false, err.Error()
		}
		for _, p := range st.Probes {
			if p.Peering == "net2" {
				return p.Alive && p.Vgate, fmt.Sprintf("%+v", p)
			}
		}
		return false, fmt.Sprintf("%+v", st.Probes)
	})

	own := netip.MustParsePrefix("198.18.0.250/24")
	if err := lab.AddWANAddress(own); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Run(lab.WAN, "ip", "route", "add", g1.TunnelAddress.String()+"/32", "via", n1.GatewayUnderlay.String()); err != nil {
		t.Fatalf("route to gw1's tunnel address from the underlay: %v\n%s", err, out)
	}
	w, err := lab.WANSender()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// 50 spoofed "I no longer hear you" requests a second for 6 s while
	// host1 pings host2 every 50 ms.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, failed int
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			src := own.Addr()
			if i%2 == 1 {
				src = g2.TunnelAddress
			}
			if err := w.Send(src, g1.TunnelAddress, 1, probeRequest(uint16(i), g2.TunnelAddress, g1.TunnelAddress, g2.ASN, g1.ASN, i%4 < 2)); err != nil {
				failed++
			} else {
				sent++
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	loss, out, perr := pingLoss(lab, n1.HostNS, n2.HostAddr.String(), 120, "0.05")
	close(stop)
	wg.Wait()
	t.Logf("attacker: %d spoofed probe requests sent (%d failed); host1 -> host2 meanwhile: %d%% of 120 pings lost", sent, failed, loss)
	if sent < 100 {
		t.Fatalf("only %d spoofed requests sent (%d failed): no attack took place", sent, failed)
	}
	if perr != nil || loss > 5 {
		t.Errorf("host1 -> host2 during the attack: %d%% lost (%v)\n%s", loss, perr, out)
	}
	st, err := g1.BGP()
	if err != nil {
		t.Fatal(err)
	}
	n := neighborOf(st, "net2")
	if n.State != api.SessionEstablished || n.LastDownCode == "probe" {
		t.Errorf("gw1's session to net2 after the attack: %+v, want established and never held down by the probe", n)
	}
	for _, p := range st.Probes {
		if p.Peering == "net2" && !p.Alive {
			t.Errorf("gw1's probe of net2 after the attack: %+v", p)
		}
	}

	// BGP listens on the same tunnel address: a connection from the
	// underlay is closed by GoBGP without a word (no OPEN: it is no
	// configured neighbor), and the session stays as it was.
	var c net.Conn
	if err := netlab.InNS(lab.WAN, func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(g1.TunnelAddress, 179).String(), 3*time.Second)
		return err
	}); err != nil {
		t.Fatalf("TCP to gw1's BGP port from the underlay: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 64)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("BGP from the underlay: read %d bytes, %v; want the connection closed at once, nothing sent", n, err)
	}
	if n, ok := established(t, g1, "net2"); !ok {
		t.Errorf("gw1's session to net2 after a connection from the underlay: %+v", n)
	}
}

// probeRequest is an ICMP echo request shaped like a vgate probe
// (routing/probe_wire.go putProbe): mark, send time, from, to (16 bytes each),
// the sender's AS, the AS it expects, flags (1: "I hear you").
func probeRequest(seq uint16, from, to netip.Addr, asn, expects uint32, hears bool) []byte {
	b := make([]byte, 8+4+8+16+16+4+4+4)
	b[0] = 8 // echo request
	binary.BigEndian.PutUint16(b[4:], 0x4242)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:12], "vgP2")
	binary.BigEndian.PutUint64(b[12:], uint64(time.Now().UnixNano()))
	f, tt := from.As16(), to.As16()
	copy(b[20:36], f[:])
	copy(b[36:52], tt[:])
	binary.BigEndian.PutUint32(b[52:], asn)
	binary.BigEndian.PutUint32(b[56:], expects)
	if hears {
		b[63] = 1
	}
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[2:], ^uint16(sum))
	return b
}
