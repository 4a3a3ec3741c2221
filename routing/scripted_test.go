package routing

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// A scripted BGP peer: the test decides what is sent on which connection
// and when, so that GoBGP's FSM can be driven into a given state
// deterministically (a real speaker on the other side would answer at
// once). Speaker tests do not run in parallel: GoBGP's StartBgp writes
// package variables that running speakers read.

// scriptOpen is an OPEN of AS asn with router ID id and hold time hold,
// offering IPv4 and IPv6 unicast and 4-octet AS numbers.
func scriptOpen(t *testing.T, asn uint32, id netip.Addr, hold uint16) []byte {
	t.Helper()
	caps := []bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
		bgp.NewCapMultiProtocol(bgp.RF_IPv6_UC),
		bgp.NewCapFourOctetASNumber(asn),
	}
	my := uint16(asn)
	if asn > 0xffff {
		my = bgp.AS_TRANS
	}
	m, err := bgp.NewBGPOpenMessage(my, hold, id, []bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scriptKeepalive(t *testing.T) []byte {
	t.Helper()
	b, err := bgp.NewBGPKeepAliveMessage().Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scriptRead reads one message from c within d: its type and, for a
// NOTIFICATION, the error code. err is io.EOF (or another read error) when
// c was closed, a timeout when nothing came.
func scriptRead(c net.Conn, d time.Duration) (typ, code uint8, err error) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	var h [bgp.BGP_HEADER_LENGTH]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, 0, err
	}
	n := int(binary.BigEndian.Uint16(h[16:18]))
	if n < bgp.BGP_HEADER_LENGTH {
		return 0, 0, fmt.Errorf("message length %d", n)
	}
	body := make([]byte, n-bgp.BGP_HEADER_LENGTH)
	if _, err := io.ReadFull(c, body); err != nil {
		return 0, 0, err
	}
	if h[18] == bgp.BGP_MSG_NOTIFICATION && len(body) > 0 {
		code = body[0]
	}
	return h[18], code, nil
}

// scriptExpect reads one message of type want from c within d.
func scriptExpect(t *testing.T, c net.Conn, want uint8, d time.Duration) {
	t.Helper()
	typ, _, err := scriptRead(c, d)
	if err != nil {
		t.Fatalf("waiting for BGP message type %d from %s: %v", want, c.RemoteAddr(), err)
	}
	if typ != want {
		t.Fatalf("BGP message type %d from %s, want %d", typ, c.RemoteAddr(), want)
	}
}

// scriptListen listens on a:0 for the speaker under test to dial.
func scriptListen(t *testing.T, a netip.Addr) *net.TCPListener {
	t.Helper()
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", a, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// scriptAccept accepts one connection within d.
func scriptAccept(t *testing.T, l *net.TCPListener, d time.Duration) net.Conn {
	t.Helper()
	l.SetDeadline(time.Now().Add(d))
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("no connection from the speaker on %s: %v", l.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scriptDial connects from local to the speaker's listener at remote.
func scriptDial(t *testing.T, local netip.Addr, remote netip.AddrPort) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", remote.String())
	if err != nil {
		t.Fatalf("dial %s from %s: %v", remote, local, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func scriptWrite(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write to %s: %v", c.RemoteAddr(), err)
	}
}

// sessionOf is what Sessions reports for name (zero if none).
func sessionOf(t *testing.T, s *Speaker, name string) NeighborStatus {
	t.Helper()
	ns, err := s.Sessions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.Name == name {
			return n
		}
	}
	return NeighborStatus{}
}

// tcpState is the state of this network namespace's IPv4 TCP socket from
// local to remote, as /proc/net/tcp gives it ("01" established, "08"
// close-wait), or "" when there is none.
func tcpState(t *testing.T, local, remote netip.AddrPort) string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	hex := func(a netip.AddrPort) string {
		ip := a.Addr().As4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port())
	}
	l, r := hex(local), hex(remote)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == l && f[2] == r {
			return f[3]
		}
	}
	return ""
}
