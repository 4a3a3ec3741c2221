package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// RawBGP is a minimal, hand-rolled BGP-4 speaker for robustness tests: it
// completes OPEN/KEEPALIVE on a TCP connection and then sends whatever
// bytes a test gives it, well-formed or not (see MalformedUpdates). It
// never parses what it is sent beyond the header, so it cannot be tripped
// by the peer under test. It keeps the session alive with KEEPALIVEs and
// records the NOTIFICATION (if any) that ends it.
type RawBGP struct {
	conn net.Conn

	wmu sync.Mutex // serializes writes

	done  chan struct{} // closed when the reader ends
	mu    sync.Mutex
	notif *RawNotification
	err   error // why the reader ended
}

// RawBGPConfig is the identity a RawBGP announces.
type RawBGPConfig struct {
	ASN      uint32     // > 65535 is sent as AS_TRANS with the 4-octet AS capability
	RouterID netip.Addr // IPv4
	HoldTime uint16     // seconds; 0 means 90
}

// RawNotification is a NOTIFICATION received from the peer.
type RawNotification struct {
	Code, Subcode uint8
	Data          []byte
}

// ErrRawBGPClosed: the peer closed the connection without a NOTIFICATION.
var ErrRawBGPClosed = errors.New("rawbgp: connection closed without NOTIFICATION")

// BGP message types and header size (RFC 4271 4.1).
const (
	bgpOpen         = 1
	bgpUpdate       = 2
	bgpNotification = 3
	bgpKeepalive    = 4
	bgpHeaderLen    = 19
	asTrans         = 23456
)

// DialRawBGP connects from local (zero: any) to remote and completes the
// OPEN/KEEPALIVE exchange.
func DialRawBGP(ctx context.Context, local netip.Addr, remote netip.AddrPort, cfg RawBGPConfig) (*RawBGP, error) {
	d := net.Dialer{}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", remote.String())
	if err != nil {
		return nil, fmt.Errorf("rawbgp: dial %s: %w", remote, err)
	}
	r, err := NewRawBGP(ctx, conn, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

// NewRawBGP completes the OPEN/KEEPALIVE exchange on conn (however it was
// made, e.g. from inside a network namespace) and owns conn from then on.
func NewRawBGP(ctx context.Context, conn net.Conn, cfg RawBGPConfig) (*RawBGP, error) {
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("rawbgp: router id %v is not an IPv4 address", cfg.RouterID)
	}
	if cfg.HoldTime == 0 {
		cfg.HoldTime = 90
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	r := &RawBGP{conn: conn, done: make(chan struct{})}
	if err := r.SendMessage(bgpOpen, openBody(cfg)); err != nil {
		return nil, err
	}
	// Expect the peer's OPEN, then its KEEPALIVE; answer the OPEN.
	hold := cfg.HoldTime
	for gotOpen := false; ; {
		typ, body, err := readMessage(conn)
		if err != nil {
			return nil, fmt.Errorf("rawbgp: handshake with %s: %w", conn.RemoteAddr(), err)
		}
		switch typ {
		case bgpOpen:
			gotOpen = true
			if len(body) >= 5 {
				if h := binary.BigEndian.Uint16(body[3:5]); h > 0 && h < hold {
					hold = h // negotiated: the smaller
				}
			}
			if err := r.SendMessage(bgpKeepalive, nil); err != nil {
				return nil, err
			}
		case bgpKeepalive:
			if gotOpen {
				conn.SetDeadline(time.Time{})
				go r.read()
				go r.keepalive(time.Duration(hold) * time.Second / 3)
				return r, nil
			}
		case bgpNotification:
			n := parseNotification(body)
			return nil, fmt.Errorf("rawbgp: handshake with %s: NOTIFICATION code %d subcode %d", conn.RemoteAddr(), n.Code, n.Subcode)
		}
	}
}

func openBody(cfg RawBGPConfig) []byte {
	my := uint16(cfg.ASN)
	if cfg.ASN > 0xffff {
		my = asTrans
	}
	caps := []byte{
		1, 4, 0, 1, 0, 1, // multiprotocol IPv4 unicast
		1, 4, 0, 2, 0, 1, // multiprotocol IPv6 unicast
		65, 4, 0, 0, 0, 0, // 4-octet AS
	}
	binary.BigEndian.PutUint32(caps[14:], cfg.ASN)
	b := []byte{4, 0, 0, 0, 0, 0, 0, 0, 0, byte(2 + len(caps)), 2, byte(len(caps))}
	binary.BigEndian.PutUint16(b[1:], my)
	binary.BigEndian.PutUint16(b[3:], cfg.HoldTime)
	copy(b[5:9], cfg.RouterID.AsSlice())
	return append(b, caps...)
}

func readMessage(rd io.Reader) (typ uint8, body []byte, err error) {
	var h [bgpHeaderLen]byte
	if _, err := io.ReadFull(rd, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[16:18]))
	if n < bgpHeaderLen {
		return 0, nil, fmt.Errorf("rawbgp: message length %d below the header's %d", n, bgpHeaderLen)
	}
	body = make([]byte, n-bgpHeaderLen)
	if _, err := io.ReadFull(rd, body); err != nil {
		return 0, nil, err
	}
	return h[18], body, nil
}

func parseNotification(b []byte) RawNotification {
	var n RawNotification
	if len(b) > 0 {
		n.Code = b[0]
	}
	if len(b) > 1 {
		n.Subcode = b[1]
		n.Data = b[2:]
	}
	return n
}

// Message returns a BGP message of type typ with body (the header's
// length is body's plus 19, whatever body holds).
func Message(typ uint8, body []byte) []byte {
	m := make([]byte, bgpHeaderLen, bgpHeaderLen+len(body))
	for i := 0; i < 16; i++ {
		m[i] = 0xff
	}
	binary.BigEndian.PutUint16(m[16:], uint16(bgpHeaderLen+len(body)))
	m[18] = typ
	return append(m, body...)
}

// SendMessage sends one message of type typ with body.
func (r *RawBGP) SendMessage(typ uint8, body []byte) error {
	return r.SendRaw(Message(typ, body))
}

// SendUpdate sends an UPDATE with body (withdrawn routes, attributes and
// NLRI, as given).
func (r *RawBGP) SendUpdate(body []byte) error { return r.SendMessage(bgpUpdate, body) }

// SendRaw writes b as is (it may be a malformed header).
func (r *RawBGP) SendRaw(b []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.conn.Write(b); err != nil {
		return fmt.Errorf("rawbgp: write to %s: %w", r.conn.RemoteAddr(), err)
	}
	return nil
}

func (r *RawBGP) read() {
	defer close(r.done)
	for {
		typ, body, err := readMessage(r.conn)
		if err != nil {
			r.mu.Lock()
			r.err = ErrRawBGPClosed
			r.mu.Unlock()
			return
		}
		if typ == bgpNotification {
			n := parseNotification(body)
			r.mu.Lock()
			r.notif = &n
			r.mu.Unlock()
		}
	}
}

func (r *RawBGP) keepalive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
			if r.SendMessage(bgpKeepalive, nil) != nil {
				return
			}
		}
	}
}

// Wait waits until the peer ends the session (or ctx ends) and returns
// the NOTIFICATION it sent, or ErrRawBGPClosed when it sent none.
func (r *RawBGP) Wait(ctx context.Context) (*RawNotification, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notif != nil {
		return r.notif, nil
	}
	return nil, r.err
}

// Alive reports whether the peer has not ended the session.
func (r *RawBGP) Alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Close ends the session (without a NOTIFICATION) and waits for the
// reader.
func (r *RawBGP) Close() {
	r.conn.Close()
	<-r.done
}

// MalformedUpdate is one malformed UPDATE, of the kinds the GoBGP
// remote-crash advisories describe. A correct speaker either resets the
// session with a NOTIFICATION (RFC 4271 6.3) or, for attribute errors,
// treats the UPDATE as a withdrawal of its NLRI (RFC 7606) and keeps the
// session; it never crashes. Where the message announces NLRI it is
// MalformedPrefix.
type MalformedUpdate struct {
	Name string
	// Message is the whole message, header included.
	Message []byte
}

// path attribute flags and types
const (
	attrTransitive = 0x40
	attrOptional   = 0x80
	attrExtLen     = 0x10
	attrOrigin     = 1
	attrASPath     = 2
	attrNextHop    = 3
	attrMPReach    = 14
	attrMPUnreach  = 15
)

func attr(flags, typ uint8, v []byte) []byte {
	if flags&attrExtLen != 0 {
		b := []byte{flags, typ, 0, 0}
		binary.BigEndian.PutUint16(b[2:], uint16(len(v)))
		return append(b, v...)
	}
	return append([]byte{flags, typ, byte(len(v))}, v...)
}

// update assembles an UPDATE body: withdrawn routes, attributes, NLRI.
func update(withdrawn, attrs, nlri []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(withdrawn)))
	b = append(b, withdrawn...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(attrs)))
	b = append(b, attrs...)
	return append(b, nlri...)
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// ValidUpdate returns a well-formed UPDATE announcing an IPv4 prefix from
// asn with next hop nh, to check a session still works.
func ValidUpdate(asn uint32, nh netip.Addr, p netip.Prefix) []byte {
	asPath := binary.BigEndian.AppendUint32([]byte{2, 1}, asn) // AS_SEQUENCE of one
	attrs := cat(
		attr(attrTransitive, attrOrigin, []byte{0}),
		attr(attrTransitive, attrASPath, asPath),
		attr(attrTransitive, attrNextHop, nh.AsSlice()),
	)
	return Message(bgpUpdate, update(nil, attrs, nlriBytes(p)))
}

func nlriBytes(p netip.Prefix) []byte {
	a := p.Masked().Addr().AsSlice()
	return append([]byte{byte(p.Bits())}, a[:(p.Bits()+7)/8]...)
}

// MalformedPrefix is the prefix malformed UPDATEs announce (where their
// NLRI is well-formed).
var MalformedPrefix = netip.MustParsePrefix("203.0.113.0/24")

// MalformedUpdates returns the catalog of malformed UPDATEs, announced as
// from asn with IPv4 next hop nh (both only matter where the message gets
// that far).
func MalformedUpdates(asn uint32, nh netip.Addr) []MalformedUpdate {
	origin := attr(attrTransitive, attrOrigin, []byte{0})
	asPath := attr(attrTransitive, attrASPath, binary.BigEndian.AppendUint32([]byte{2, 1}, asn))
	nextHop := attr(attrTransitive, attrNextHop, nh.AsSlice())
	good := cat(origin, asPath, nextHop)
	nlri := nlriBytes(MalformedPrefix)
	mpHead := func(afi uint16, safi uint8, nhLen uint8) []byte {
		b := binary.BigEndian.AppendUint16(nil, afi)
		return append(b, safi, nhLen)
	}
	v6nh := netip.MustParseAddr("fd00::1").AsSlice()
	var out []MalformedUpdate
	add := func(name string, body []byte) {
		out = append(out, MalformedUpdate{Name: name, Message: Message(bgpUpdate, body)})
	}
	// An attribute whose length runs past the attributes.
	{
		a := cat(origin, asPath, []byte{attrTransitive, attrNextHop, 40}, nh.AsSlice())
		add("attribute-length-overrun", update(nil, a, nlri))
	}
	// Total path attribute length past the message.
	{
		b := update(nil, good, nil)
		binary.BigEndian.PutUint16(b[2:], uint16(len(good)+200))
		add("total-attribute-length-overrun", b)
	}
	// Withdrawn routes length past the message.
	add("withdrawn-length-overrun", cat([]byte{0x0f, 0xff}, nlri))
	// NLRI cut short: /24 with one address octet.
	add("truncated-nlri", update(nil, good, []byte{24, 203}))
	// IPv4 prefix length 200.
	add("huge-prefix-length", update(nil, good, []byte{200, 203, 0, 113, 0}))
	// Withdrawn prefix length 33.
	add("huge-withdrawn-prefix-length", update([]byte{33, 10, 0, 0, 0, 0}, nil, nil))
	// AS_PATH segment claiming 10 ASNs, carrying one.
	{
		seg := binary.BigEndian.AppendUint32([]byte{2, 10}, asn)
		add("as-path-segment-overrun", update(nil, cat(origin, attr(attrTransitive, attrASPath, seg), nextHop), nlri))
	}
	// AS_PATH segment of unknown type 9.
	{
		seg := binary.BigEndian.AppendUint32([]byte{9, 1}, asn)
		add("as-path-bad-segment-type", update(nil, cat(origin, attr(attrTransitive, attrASPath, seg), nextHop), nlri))
	}
	// AS_PATH whose length is not a whole number of 4-octet ASNs.
	add("as-path-odd-length", update(nil, cat(origin, attr(attrTransitive, attrASPath, []byte{2, 1, 0, 0, 0xfd}), nextHop), nlri))
	// ORIGIN of length 5.
	add("origin-bad-length", update(nil, cat(attr(attrTransitive, attrOrigin, []byte{0, 0, 0, 0, 0}), asPath, nextHop), nlri))
	// NEXT_HOP of length 2.
	add("next-hop-bad-length", update(nil, cat(origin, asPath, attr(attrTransitive, attrNextHop, []byte{10, 0})), nlri))
	// MP_REACH_NLRI for a bogus AFI/SAFI.
	{
		v := cat(mpHead(0x4242, 0x99, 4), nh.AsSlice(), []byte{0}, nlri)
		add("mp-reach-bogus-afi-safi", update(nil, cat(origin, asPath, attr(attrOptional, attrMPReach, v)), nil))
	}
	// MP_REACH_NLRI IPv6 with a next hop length past the attribute.
	{
		v := cat(mpHead(2, 1, 64), v6nh)
		add("mp-reach-nexthop-overrun", update(nil, cat(origin, asPath, attr(attrOptional, attrMPReach, v)), nil))
	}
	// MP_REACH_NLRI IPv6 with prefix length 255.
	{
		v := cat(mpHead(2, 1, 16), v6nh, []byte{0, 255, 0xfd, 0})
		add("mp-reach-huge-prefix-length", update(nil, cat(origin, asPath, attr(attrOptional, attrMPReach, v)), nil))
	}
	// MP_REACH_NLRI cut short: only the AFI.
	add("mp-reach-truncated", update(nil, cat(origin, asPath, attr(attrOptional, attrMPReach, []byte{0, 2})), nil))
	// MP_UNREACH_NLRI IPv6 with prefix length 200 and no address.
	add("mp-unreach-huge-prefix-length", update(nil, attr(attrOptional, attrMPUnreach, []byte{0, 2, 1, 200}), nil))
	// An extended-length attribute header cut short.
	add("attribute-header-truncated", update(nil, cat(good, []byte{attrOptional | attrExtLen, 99, 0}), nil))
	// A header whose length field is below the minimum.
	{
		m := Message(bgpUpdate, update(nil, nil, nil))
		binary.BigEndian.PutUint16(m[16:], 5)
		out = append(out, MalformedUpdate{Name: "header-length-too-short", Message: m})
	}
	return out
}
