package names

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/vgate-project/vgate/gateway/connlimit"
	"github.com/vgate-project/vgate/gateway/names/zone"
)

// Port is where the server listens on the tunnel address (UDP and TCP).
const Port = 53

// ForwardTimeout bounds one forwarded query per target.
const ForwardTimeout = 2 * time.Second

// maxForwards bounds the queries being forwarded at once, and
// maxForwardsPerAsker those of one asker (an IPv4 address, an IPv6 /64);
// more are answered SERVFAIL at once (a flood of queries cannot pile up
// goroutines, nor one asker take every slot).
const (
	maxForwards         = 256
	maxForwardsPerAsker = 32
)

// TCP connections: at most maxTCPConns at once, maxTCPPerAsker from one
// asker (an IPv4 address, an IPv6 /64: connlimit); each gets tcpReadTimeout for its first query and the dns
// package's idle timeout (8 s) between queries, and is closed after its
// 128th query.
const (
	maxTCPConns    = 64
	maxTCPPerAsker = 8
	tcpReadTimeout = 5 * time.Second
)

// Server serves DNS on one address. Its zone and directory are read per
// query, so a change (SetZone, a client revoked) applies to the next
// query.
type Server struct {
	log      *slog.Logger
	addr     netip.Addr
	zone     atomic.Pointer[zone.Zone]
	dir      func() Directory
	udp, tcp *dns.Server
	tcpLn    *connlimit.Listener
	forwards connlimit.Counter // forwards in flight, by asker
	// counts by outcome (api.DNSOutcomes order: outcome constants).
	counts [numOutcomes]atomic.Uint64
	// exchange sends m to target (from via, if valid); a seam for tests,
	// which replace it while the server runs.
	exchange atomic.Pointer[exchangeFunc]
}

// Listen serves z on addr, UDP and TCP port 53 (port, when not 0, for
// tests). dir returns the current client directory. On error nothing is
// left listening.
func Listen(addr netip.Addr, port uint16, z *zone.Zone, dir func() Directory, log *slog.Logger) (*Server, error) {
	if port == 0 {
		port = Port
	}
	ap := netip.AddrPortFrom(addr, port)
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("dns: listen udp %s: %w", ap, err)
	}
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dns: listen tcp %s: %w", ap, err)
	}
	s := &Server{log: log, addr: addr, dir: dir}
	s.setExchange(exchange)
	s.zone.Store(z)
	s.udp = &dns.Server{PacketConn: pc, Handler: s, DecorateReader: func(r dns.Reader) dns.Reader { return insideReader{r, s} }}
	// TCP: a connection from outside, or beyond the bounds, is closed as
	// it is accepted, before anything is read.
	s.tcpLn = connlimit.New(ln, maxTCPConns, maxTCPPerAsker)
	s.tcpLn.Allow = func(a netip.Addr) bool { return Classify(s.zone.Load(), s.directory(), a) != Outside }
	s.tcpLn.OnDrop = func() { s.counts[outDropped].Add(1) }
	s.tcp = &dns.Server{Listener: s.tcpLn, Handler: s, ReadTimeout: tcpReadTimeout, WriteTimeout: 5 * time.Second}
	started := make(chan struct{}, 2)
	failed := make(chan error, 2)
	s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				failed <- err
			}
		}()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-failed:
			s.Close()
			pc.Close()
			ln.Close()
			return nil, fmt.Errorf("dns: serve on %s: %w", ap, err)
		}
	}
	log.Info("dns serving", "address", ap.String(), "zone", z.Zone)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() netip.Addr { return s.addr }

// SetZone replaces what the server answers.
func (s *Server) SetZone(z *zone.Zone) { s.zone.Store(z) }

// Close stops both listeners.
func (s *Server) Close() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}

// Outcomes of a query, counted (Counts).
const (
	outAnswer = iota
	outNXDomain
	outRefused
	outForwarded
	outServfail
	outMalformed
	outDropped
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"answer", "nxdomain", "refused", "forwarded", "servfail", "malformed", "dropped"}

// Counts returns the queries answered so far by outcome: answer,
// nxdomain, refused, forwarded, servfail, malformed, and dropped (sent no
// answer: a query from outside, or a TCP connection from outside or over
// the limits).
func (s *Server) Counts() map[string]uint64 {
	out := make(map[string]uint64, numOutcomes)
	for i := range s.counts {
		out[outcomeNames[i]] = s.counts[i].Load()
	}
	return out
}

// Zone is what the server answers now.
func (s *Server) Zone() *zone.Zone { return s.zone.Load() }

// ServeDNS answers one query (dns.Handler).
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	resp, outcome := s.respond(w.RemoteAddr(), r, w.LocalAddr().Network() == "udp")
	s.counts[outcome].Add(1)
	if resp != nil {
		_ = w.WriteMsg(resp)
	}
}

// directory is the current client directory, never nil.
func (s *Server) directory() Directory {
	if d := s.dir(); d != nil {
		return d
	}
	return NoClients
}

// inside reports whether a query from remote may get an answer: its
// source is a client, or in the local network or a peered one.
func (s *Server) inside(remote net.Addr) bool {
	return Classify(s.zone.Load(), s.directory(), addrOf(remote)) != Outside
}

// respond is the answer to r and its outcome (nil: send nothing), with
// RA set where the server forwards for the asker.
func (s *Server) respond(remote net.Addr, r *dns.Msg, udp bool) (*dns.Msg, int) {
	m, out := s.answer(remote, r, udp)
	if m != nil {
		kind := Classify(s.zone.Load(), s.directory(), addrOf(remote))
		m.RecursionAvailable = out == outForwarded || RecursionAvailable(s.zone.Load(), kind)
	}
	return m, out
}

// answer is respond without the RA bit.
func (s *Server) answer(remote net.Addr, r *dns.Msg, udp bool) (*dns.Msg, int) {
	asker := addrOf(remote)
	z := s.zone.Load()
	dir := s.directory()
	if Classify(z, dir, asker) == Outside {
		return nil, outDropped // as Decide says; before anything else is read
	}
	if r.Response {
		return nil, outMalformed // never answer an answer
	}
	m := new(dns.Msg)
	switch {
	case r.Opcode != dns.OpcodeQuery:
		return m.SetRcode(r, dns.RcodeNotImplemented), outMalformed
	case len(r.Question) != 1:
		return m.SetRcode(r, dns.RcodeFormatError), outMalformed
	case r.Question[0].Qclass != dns.ClassINET:
		return m.SetRcode(r, dns.RcodeRefused), outRefused
	}
	q := r.Question[0]
	d := Decide(z, dir, asker, q.Name, q.Qtype)
	if d.Why != "" {
		s.log.Debug("dns", "asker", asker.String(), "name", q.Name, "type", dns.TypeToString[q.Qtype], "action", d.Action.String(), "why", d.Why)
	}
	switch d.Action {
	case Drop:
		return nil, outDropped
	case Refuse:
		return m.SetRcode(r, dns.RcodeRefused), outRefused
	case NXDomain:
		m.SetRcode(r, dns.RcodeNameError)
		m.Authoritative = true
		m.Ns = d.Authority
		return m, outNXDomain
	case Answer:
		m.SetReply(r)
		m.Authoritative = true
		m.Answer, m.Ns = d.Records, d.Authority
		return m, outAnswer
	}
	in := s.forward(r, d, asker)
	if in == nil {
		return m.SetRcode(r, dns.RcodeServerFailure), outServfail
	}
	MapForwarded(in, d.Ingress) // nat.go
	if d.Filter {
		FilterForwarded(in, dir, asker)
	}
	in.Id = r.Id
	if udp {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), dns.MinMsgSize)
		}
		in.Truncate(size)
	}
	return in, outForwarded
}

// forward asks d.Targets in order for asker; nil when none answered.
func (s *Server) forward(r *dns.Msg, d Decision, asker netip.Addr) *dns.Msg {
	src := connlimit.Source(asker)
	if !s.forwards.Take(src, maxForwardsPerAsker, maxForwards) {
		if s.forwards.Open() >= maxForwards {
			s.log.Warn("dns: too many queries being forwarded; answering SERVFAIL", "max", maxForwards)
		} else {
			s.log.Debug("dns: too many queries of one asker being forwarded; answering SERVFAIL", "asker", asker.String(), "max", maxForwardsPerAsker)
		}
		return nil
	}
	defer s.forwards.Put(src)
	q := r.Copy()
	q.Id = dns.Id()
	for _, t := range d.Targets {
		ctx, cancel := context.WithTimeout(context.Background(), ForwardTimeout)
		in, err := (*s.exchange.Load())(ctx, q, t, d.Via)
		cancel()
		if err == nil && in != nil {
			return in
		}
		s.log.Debug("dns: forward failed", "target", t.String(), "error", err)
	}
	return nil
}

// exchangeFunc sends m to target, from via if valid, and returns the
// answer.
type exchangeFunc func(ctx context.Context, m *dns.Msg, target netip.AddrPort, via netip.Addr) (*dns.Msg, error)

func (s *Server) setExchange(f exchangeFunc) { s.exchange.Store(&f) }

// exchange sends m over UDP (TCP when the answer is truncated).
func exchange(ctx context.Context, m *dns.Msg, target netip.AddrPort, via netip.Addr) (*dns.Msg, error) {
	var in *dns.Msg
	var err error
	for _, network := range []string{"udp", "tcp"} {
		d := &net.Dialer{Timeout: ForwardTimeout}
		if via.IsValid() {
			if network == "udp" {
				d.LocalAddr = &net.UDPAddr{IP: via.AsSlice()}
			} else {
				d.LocalAddr = &net.TCPAddr{IP: via.AsSlice()}
			}
		}
		c := &dns.Client{Net: network, Dialer: d, Timeout: ForwardTimeout}
		in, _, err = c.ExchangeContext(ctx, m, target.String())
		if err != nil || !in.Truncated {
			break
		}
	}
	if err == nil && in.Id != m.Id {
		return nil, errors.New("answer with a different id")
	}
	return in, err
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// insideReader drops UDP queries from outside (Server.inside) as they are
// read, before the dns package looks at them: it would answer a malformed
// one with FORMERR, to anyone.
type insideReader struct {
	dns.Reader
	s *Server
}

func (r insideReader) ReadUDP(conn *net.UDPConn, timeout time.Duration) ([]byte, *dns.SessionUDP, error) {
	for {
		m, sess, err := r.Reader.ReadUDP(conn, timeout)
		if err != nil || r.s.inside(sess.RemoteAddr()) {
			return m, sess, err
		}
		r.s.counts[outDropped].Add(1)
	}
}
