package dataplane

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Real TUNs with wireguard-go's offloads, real kernels on both ends: the
// seam's NAT on a's TUN, a pump in place of the encrypted tunnel.
//
//	ns a: host 10.9.0.5          ns b: gateway 10.1.0.2          ns c: host 10.1.1.3
//	      fd09::5                      fd01::2                         fd01:0:0:1::3
//	   tunA ══ clampTUN(NAT) ══ pump ══ tunB ─ forwards ─ veth (MTU 1280) ─ veth
//
// a sees b's network 10.1.0.0/16 as 100.65.0.0/16 (fd01::/48 as
// fd65::/48); b sees a's 10.9.0.0/16 as 100.99.0.0/16 (fd09::/48 as
// fd99::/48). Reads from tunA are GSO packets split by wireguard-go;
// writes to it are coalesced again (GRO) after the translation, and
// coalescing needs valid checksums.
func TestNATOverRealTUNs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to create TUNs in network namespaces")
	}
	t.Parallel()
	names := map[byte]string{}
	for _, x := range []byte("abc") {
		names[x] = fmt.Sprintf("vgnat%d%c", os.Getpid(), x)
		if out, err := exec.Command("ip", "netns", "add", names[x]).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v %s", err, out)
		}
		n := names[x]
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n).Run() })
	}
	ip := func(ns byte, args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", names[ns]}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %v: %v %s", names[ns], args, err, out)
		}
	}
	var tunA, tunB tun.Device
	inNS(t, names['a'], func() error {
		var err error
		tunA, err = CreateTUN("tuna", 1420)
		return err
	})
	inNS(t, names['b'], func() error {
		var err error
		tunB, err = CreateTUN("tunb", 1420)
		return err
	})
	ip('a', "link", "set", "lo", "up")
	ip('a', "addr", "add", "10.9.0.5/32", "dev", "tuna")
	ip('a', "addr", "add", "fd09::5/128", "dev", "tuna", "nodad")
	ip('a', "link", "set", "tuna", "up")
	ip('a', "route", "add", "100.65.0.0/16", "dev", "tuna")
	ip('a', "route", "add", "fd65::/48", "dev", "tuna")
	ip('b', "link", "set", "lo", "up")
	ip('b', "addr", "add", "10.1.0.2/32", "dev", "tunb")
	ip('b', "addr", "add", "fd01::2/128", "dev", "tunb", "nodad")
	ip('b', "link", "set", "tunb", "up")
	ip('b', "route", "add", "100.99.0.0/16", "dev", "tunb")
	ip('b', "route", "add", "fd99::/48", "dev", "tunb")
	ip('b', "link", "add", "vb", "mtu", "1280", "type", "veth", "peer", "name", "vc", "netns", names['c'])
	ip('b', "addr", "add", "10.1.1.1/24", "dev", "vb")
	ip('b', "addr", "add", "fd01:0:0:1::1/64", "dev", "vb", "nodad")
	ip('b', "link", "set", "vb", "up")
	ip('c', "link", "set", "lo", "up")
	ip('c', "link", "set", "vc", "mtu", "1280", "up")
	ip('c', "addr", "add", "10.1.1.3/24", "dev", "vc")
	ip('c', "addr", "add", "fd01:0:0:1::3/64", "dev", "vc", "nodad")
	ip('c', "route", "add", "default", "via", "10.1.1.1")
	ip('c', "route", "add", "default", "via", "fd01:0:0:1::1")
	for _, k := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"} {
		if out, err := exec.Command("ip", "netns", "exec", names['b'], "sysctl", "-w", k).CombinedOutput(); err != nil {
			t.Fatalf("sysctl %s: %v %s", k, err, out)
		}
	}

	ct := newClampTUN(tunA, 1420)
	ct.src.setAllowed(pfx("100.65.0.0/16", "fd65::/48"))
	if err := ct.nat.set(natRules); err != nil {
		t.Fatal(err)
	}
	var written atomic.Uint64 // packets handed to ct.Write
	var maxRead atomic.Int64  // the most packets one read from tunA returned
	var wg sync.WaitGroup
	pump := func(from, to tun.Device, count *atomic.Uint64, most *atomic.Int64) {
		defer wg.Done()
		const off = 16
		bs := from.BatchSize()
		bufs, sizes, out := make([][]byte, bs), make([]int, bs), make([][]byte, 0, bs)
		for i := range bufs {
			bufs[i] = make([]byte, off+65535)
		}
		for {
			n, err := from.Read(bufs, sizes, off)
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if most != nil && int64(n) > most.Load() {
				most.Store(int64(n))
			}
			out = out[:0]
			for i := range n {
				// b's own seam would not send its kernel's link-local
				// and multicast packets (srccheck.go): neither does
				// the pump.
				if p := bufs[i][off : off+sizes[i]]; sizes[i] > 0 && !linkLocal6(p) {
					out = append(out, bufs[i][:off+sizes[i]])
				}
			}
			if count != nil {
				count.Add(uint64(len(out)))
			}
			if len(out) > 0 {
				to.Write(out, off)
			}
		}
	}
	wg.Add(2)
	go pump(ct, tunB, nil, &maxRead)
	go pump(tunB, ct, &written, nil)
	t.Cleanup(func() { tunA.Close(); tunB.Close(); wg.Wait() })

	t.Run("tcp both ways", func(t *testing.T) {
		for _, c := range []struct{ listen, dial string }{{"10.1.0.2:5201", "100.65.0.2:5201"}, {"[fd01::2]:5202", "[fd65::2]:5202"}} {
			tcpBothWays(t, names['a'], names['b'], c.listen, c.dial, 16<<20)
		}
		if tunA.BatchSize() > 1 && maxRead.Load() < 2 {
			t.Errorf("no read from tunA returned more than one packet: the kernel's GSO packets were not split at the seam")
		}
		rx := linkRxPackets(t, names['a'], "tuna")
		t.Logf("reads from tunA: up to %d packets; %d packets written through the seam, %d received by a's kernel", maxRead.Load(), written.Load(), rx)
		if tunA.BatchSize() > 1 && rx >= written.Load() {
			t.Errorf("a's kernel received %d packets for %d written: nothing was coalesced (GRO refuses packets whose checksums do not verify)", rx, written.Load())
		}
		if st := ct.nat.stats(); st.DroppedInbound != (NATDrops{}) || st.DroppedOutbound != (NATDrops{}) || ct.src.dropped.Load() != 0 {
			t.Errorf("drops: nat in %+v out %+v, source check %d", st.DroppedInbound, st.DroppedOutbound, ct.src.dropped.Load())
		}
	})
	// b forwards to c over a 1280-byte link and answers a too-big packet
	// with ICMP; through the mapping, a's kernel learns the path MTU.
	t.Run("path mtu", func(t *testing.T) {
		for _, dst := range []string{"100.65.1.3", "fd65:0:0:1::3"} {
			inNS(t, names['a'], func() error { return pmtu(dst) })
		}
	})
	// traceroute: a probe with TTL 1 expires at b, whose ICMP error
	// reaches the probing socket, from b's address as a sees it.
	t.Run("traceroute", func(t *testing.T) {
		for _, c := range []struct {
			dst  string
			from netip.Prefix
		}{{"100.65.1.3", netip.MustParsePrefix("100.65.0.0/16")}, {"fd65:0:0:1::3", netip.MustParsePrefix("fd65::/48")}} {
			inNS(t, names['a'], func() error { return ttlExpired(c.dst, c.from) })
		}
	})
}

// inNS runs f on a thread in the named network namespace (the thread is
// not returned to the pool).
func inNS(t *testing.T, name string, f func() error) {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in %s: %v", name, err)
	}
}

// tcpBothWays sends size bytes from a to b and size bytes back on one
// connection (b listens on listen, a dials dial) and checks both arrive
// intact.
func tcpBothWays(t *testing.T, nsA, nsB, listen, dial string, size int) {
	t.Helper()
	var l net.Listener
	inNS(t, nsB, func() error {
		var err error
		l, err = net.Listen("tcp", listen)
		return err
	})
	defer l.Close()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*31 + i>>8)
	}
	want := sha256.Sum256(data)
	srv := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			srv <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		if _, err := io.CopyN(h, c, int64(size)); err != nil {
			srv <- fmt.Errorf("b receiving: %w", err)
			return
		}
		if !bytes.Equal(h.Sum(nil), want[:]) {
			srv <- errors.New("b received different data")
			return
		}
		_, err = c.Write(data)
		srv <- err
	}()
	inNS(t, nsA, func() error {
		c, err := net.DialTimeout("tcp", dial, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := c.Write(data); err != nil {
			return fmt.Errorf("a sending: %w", err)
		}
		h := sha256.New()
		if _, err := io.CopyN(h, c, int64(size)); err != nil {
			return fmt.Errorf("a receiving: %w", err)
		}
		if !bytes.Equal(h.Sum(nil), want[:]) {
			return errors.New("a received different data")
		}
		return nil
	})
	if err := <-srv; err != nil {
		t.Fatal(err)
	}
}

// linkRxPackets reads an interface's received-packets counter.
func linkRxPackets(t *testing.T, ns, dev string) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-s", "link", "show", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v %s", err, out)
	}
	m := regexp.MustCompile(`RX:[^\n]*\n\s*\d+\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no RX counters in:\n%s", out)
	}
	n, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return n
}

// pmtu sends a 1400-byte datagram that must not be fragmented to dst and
// waits until the socket's path MTU drops to 1280 (the kernel learnt it
// from the ICMP error, which it matched to the socket only if its quote
// was translated).
func pmtu(dst string) error {
	a := netip.MustParseAddr(dst)
	fam, lvl, disc, do, mtuOpt := unix.AF_INET, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO, unix.IP_MTU
	if a.Is6() {
		fam, lvl, disc, do, mtuOpt = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO, unix.IPV6_MTU
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, lvl, disc, do); err != nil {
		return err
	}
	if err := unix.Connect(fd, sockaddr(a, 9)); err != nil {
		return fmt.Errorf("connect %s: %w", dst, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		unix.Write(fd, make([]byte, 1400-28)) // EMSGSIZE once the MTU is known
		time.Sleep(50 * time.Millisecond)
		if m, err := unix.GetsockoptInt(fd, lvl, mtuOpt); err == nil && m == 1280 {
			return nil
		}
	}
	m, err := unix.GetsockoptInt(fd, lvl, mtuOpt)
	return fmt.Errorf("%s: path MTU %d (%v), want 1280: the ICMP error did not reach the socket", dst, m, err)
}

// ttlExpired sends a probe with TTL (hop limit) 1 to dst and waits for
// the ICMP time-exceeded error on the socket's error queue, sent from an
// address in from.
func ttlExpired(dst string, from netip.Prefix) error {
	a := netip.MustParseAddr(dst)
	fam, lvl, recverr, ttl := unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVERR, unix.IP_TTL
	if a.Is6() {
		fam, lvl, recverr, ttl = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, unix.IPV6_UNICAST_HOPS
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, o := range [][2]int{{recverr, 1}, {ttl, 1}} {
		if err := unix.SetsockoptInt(fd, lvl, o[0], o[1]); err != nil {
			return err
		}
	}
	if err := unix.Connect(fd, sockaddr(a, 33434)); err != nil {
		return err
	}
	buf, oob := make([]byte, 512), make([]byte, 512)
	for range 15 {
		unix.Write(fd, []byte("probe"))
		// The error queue is not waited on by recvmsg: poll for it.
		unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLERR}}, 300)
		_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE)
		if err != nil {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Level != int32(lvl) || int(m.Header.Type) != recverr || len(m.Data) < 16 {
				continue
			}
			// struct sock_extended_err, then the offender's sockaddr.
			origin, typ := m.Data[4], m.Data[5]
			var off netip.Addr
			if a.Is4() && len(m.Data) >= 16+8 {
				off = netip.AddrFrom4([4]byte(m.Data[16+4 : 16+8]))
			} else if a.Is6() && len(m.Data) >= 16+24 {
				off = netip.AddrFrom16([16]byte(m.Data[16+8 : 16+24]))
			}
			wantOrigin, wantType := byte(unix.SO_EE_ORIGIN_ICMP), byte(11)
			if a.Is6() {
				wantOrigin, wantType = unix.SO_EE_ORIGIN_ICMP6, 3
			}
			if origin != wantOrigin || typ != wantType || !from.Contains(off) {
				return fmt.Errorf("%s: error origin %d type %d from %s, want origin %d type %d from %s", dst, origin, typ, off, wantOrigin, wantType, from)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: no time-exceeded error reached the socket", dst)
}

// linkLocal6 reports whether p is an IPv6 packet from a link-local
// address or to a multicast one.
func linkLocal6(p []byte) bool {
	if len(p) < 40 || p[0]>>4 != 6 {
		return false
	}
	return netip.AddrFrom16([16]byte(p[8:24])).IsLinkLocalUnicast() || p[24] == 0xff
}

func sockaddr(a netip.Addr, port int) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Port: port, Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: port, Addr: a.As16()}
}
