package routing

// The probe's raw ICMP socket: the kernel filter that passes only
// vgate's echoes, the packet info that says which interface one arrived
// on, and the allocation-free receive.

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// ifRecheck bounds how often a target's interface index is looked up
// again for a packet that arrived on another interface.
const ifRecheck = time.Second

// filter lets only echo requests and replies reach the socket (a raw ICMP
// socket otherwise gets every ICMP packet the host receives).
func (p *Prober) filter() error {
	if p.isV6 {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoRequest)
		f.Accept(ipv6.ICMPTypeEchoReply)
		return ipv6.NewPacketConn(p.conn).SetICMPFilter(&f)
	}
	var serr error
	err := p.raw.Control(func(fd uintptr) {
		// ICMP_FILTER (linux/icmp.h): a bit set blocks that type.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_RAW, 1, ^(1<<0 | 1<<8))
	})
	return errors.Join(err, serr)
}

// pktinfo makes the socket say which interface each packet arrived on.
func (p *Prober) pktinfo() error {
	var serr error
	err := p.raw.Control(func(fd uintptr) {
		if p.isV6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	return errors.Join(err, serr)
}

// interfaceIndex is the index of the interface called name, 0 when there
// is none.
func interfaceIndex(name string) int32 {
	if name == "" {
		return 0
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0
	}
	return int32(ifi.Index)
}

// probeIn is where a received packet came from: its source address and
// the interface it arrived on.
type probeIn struct {
	src     netip.Addr
	ifindex int32
}

// recvMsg is one reader's recvmsg(2) state, made once: receiving
// allocates nothing.
type recvMsg struct {
	name unix.RawSockaddrInet6 // large enough for either family
	oob  [128]byte
	iov  unix.Iovec
	hdr  unix.Msghdr
}

// recv reads one packet into buf without waiting and says where it came
// from.
func (m *recvMsg) recv(fd uintptr, buf []byte) (int, probeIn, syscall.Errno) {
	m.iov.Base = &buf[0]
	m.iov.SetLen(len(buf))
	m.hdr.Name = (*byte)(unsafe.Pointer(&m.name))
	m.hdr.Namelen = uint32(unsafe.Sizeof(m.name))
	m.hdr.Iov = &m.iov
	m.hdr.SetIovlen(1)
	m.hdr.Control = &m.oob[0]
	m.hdr.SetControllen(len(m.oob))
	m.hdr.Flags = 0
	n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&m.hdr)), unix.MSG_DONTWAIT)
	if errno != 0 {
		return 0, probeIn{}, errno
	}
	var in probeIn
	switch m.name.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&m.name))
		in.src = netip.AddrFrom4(sa.Addr)
	case unix.AF_INET6:
		in.src = netip.AddrFrom16(m.name.Addr).Unmap()
	}
	oob := m.oob[:m.hdr.Controllen]
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			break
		}
		data := oob[unix.SizeofCmsghdr:l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			in.ifindex = (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0])).Ifindex
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			in.ifindex = int32((*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0])).Ifindex)
		}
		sp := unix.CmsgSpace(l - unix.SizeofCmsghdr)
		if sp > len(oob) {
			break
		}
		oob = oob[sp:]
	}
	return int(n), in, 0
}

// arrivedVia reports whether a packet that arrived on interface ifindex
// came through t's tunnel. Called with p.mu held.
func (p *Prober) arrivedVia(t *probeTarget, ifindex int32, now time.Time) bool {
	if ifindex != 0 && ifindex == t.ifindex {
		return true
	}
	if now.Sub(t.ifChecked) < ifRecheck || p.ifIndex == nil {
		return false
	}
	t.ifindex, t.ifChecked = p.ifIndex(t.Interface), now
	return ifindex != 0 && ifindex == t.ifindex
}
