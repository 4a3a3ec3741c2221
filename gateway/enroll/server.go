package enroll

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/vgate-project/vgate/gateway/connlimit"
	"github.com/vgate-project/vgate/gateway/keys"
)

// Path is the enrollment endpoint.
const Path = "/v1/enroll"

// Connection bounds of the enrollment listener, counted from accept to
// close (connlimit.Yielding): a connection beyond them takes the place of
// the oldest of its source (or of all) that has not sent a pending
// invite's secret, so nobody holds a slot against a laptop.
const (
	MaxConns          = 256
	MaxConnsPerSource = 16
)

// Bounds of one enrollment exchange on the listener. The TLS handshake
// and the request headers must arrive within HeaderTimeout, the whole
// request within ReadTimeout; the answer is written within WriteTimeout.
// A connection carries one request (no keep-alive).
const (
	MaxRequest    = 4 << 10
	maxHeader     = 8 << 10
	HeaderTimeout = 5 * time.Second
	ReadTimeout   = 10 * time.Second
	WriteTimeout  = 10 * time.Second
)

// Request is what a laptop sends: the token's secret and its own public
// key (both base64). Nothing else leaves the laptop.
type Request struct {
	Secret    string `json:"secret"`
	PublicKey string `json:"public_key"`
}

// ParseRequest decodes a request body: strict JSON (no other fields, one
// value), a 32-byte base64 secret and a WireGuard public key. A bad
// request is a *Refused with CodeBadRequest.
func ParseRequest(body []byte) ([32]byte, keys.PublicKey, error) {
	var secret [32]byte
	var req Request
	if len(body) > MaxRequest {
		return secret, keys.PublicKey{}, &Refused{CodeBadRequest, fmt.Sprintf("bad request: larger than %d bytes", MaxRequest)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return secret, keys.PublicKey{}, &Refused{CodeBadRequest, "bad request: want JSON {secret, public_key}"}
	}
	if b, err := base64.StdEncoding.DecodeString(req.Secret); err != nil || len(b) != len(secret) {
		return secret, keys.PublicKey{}, &Refused{CodeBadRequest, "bad request: secret is not 32 bytes of base64"}
	} else {
		copy(secret[:], b)
	}
	pub, err := keys.ParsePublic(req.PublicKey)
	if err != nil {
		return secret, keys.PublicKey{}, &Refused{CodeBadRequest, "bad request: public_key is not a base64-encoded 32-byte WireGuard key"}
	}
	return secret, pub, nil
}

// Response is the enrolled client: its name and wg-quick config without a
// private key (the laptop adds its own).
type Response struct {
	Name   string `json:"name"`
	Config string `json:"config"`
}

// answerError is a refusal on the wire.
type answerError struct {
	Error string `json:"error"`
	Code  Code   `json:"code"`
}

// RedeemFunc enrolls pub with the invite of secret; a refusal is a
// *Refused.
type RedeemFunc func(ctx context.Context, secret [32]byte, pub keys.PublicKey) (Response, error)

// Invites is what the listener asks of the gateway.
type Invites struct {
	// Pending reports whether secret is a pending invite's. It runs for
	// every well-formed request, before any rate limit, and changes
	// nothing (Store.PendingSecret).
	Pending func(secret [32]byte) bool
	Redeem  RedeemFunc
}

// Server is the enrollment HTTPS listener.
type Server struct {
	addr      string
	boundAddr string // what the listener got (port 0 in tests)
	srv       *http.Server
	conns     *connlimit.Yielding
	inv       Invites
	log       *slog.Logger
	mu        sync.Mutex
	limit     *Limiter
	now       func() time.Time
	// attempts by result ("enrolled" or a refusal Code); under mu.
	attempts map[string]uint64
}

// Attempts returns the enrollment attempts so far by result: "enrolled"
// or the refusal's code.
func (s *Server) Attempts() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.attempts))
	for k, v := range s.attempts {
		out[k] = v
	}
	return out
}

func (s *Server) count(result string) {
	s.mu.Lock()
	s.attempts[result]++
	s.mu.Unlock()
}

type connKey struct{}

// Listen serves enrollment on addr (host:port) with cert. On error
// nothing listens.
func Listen(addr string, cert tls.Certificate, inv Invites, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("point_to_site.enroll.listen %s: %w", addr, err)
	}
	s := &Server{addr: addr, boundAddr: ln.Addr().String(), inv: inv, log: log, limit: NewLimiter(), now: time.Now, attempts: map[string]uint64{}}
	s.conns = connlimit.NewYielding(ln, MaxConns, MaxConnsPerSource)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, s.enroll)
	s.srv = &http.Server{
		Handler:   mux,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		// The TLS handshake runs within the shortest of these.
		ReadHeaderTimeout: HeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       HeaderTimeout,
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	s.srv.SetKeepAlivesEnabled(false)
	go s.srv.ServeTLS(s.conns, "", "")
	log.Info("enrollment listening", "address", ln.Addr().String())
	return s, nil
}

// Addr is the configured listen address.
func (s *Server) Addr() string { return s.addr }

// Close stops the listener.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// enroll answers one request. A request with a pending invite's secret
// goes straight to Redeem and its connection is protected (MaxConns);
// any other request counts as a failure of its source (Limiter) and,
// once the source is limited, gets 429 without a reason and without a
// log line. Either way the work before that decision is bounded: at most
// MaxRequest bytes of JSON, one base64 decode, one SHA-256.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	src := remoteAddr(r)
	body, rerr := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequest))
	secret, pub, perr := ParseRequest(body)
	if rerr != nil {
		perr = &Refused{CodeBadRequest, fmt.Sprintf("bad request: body larger than %d bytes or cut", MaxRequest)}
	}
	if perr == nil && s.inv.Pending(secret) {
		if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
			s.conns.Protect(c)
		}
		s.redeem(w, r, src, secret, pub)
		return
	}
	s.mu.Lock()
	ok := s.limit.Take(connlimit.Source(src), s.now())
	s.mu.Unlock()
	if !ok {
		s.count(string(CodeRateLimited))
		w.Header().Set("Retry-After", fmt.Sprint(int(Refill/time.Second)))
		reply(w, http.StatusTooManyRequests, answerError{"too many failed enrollment attempts from your address; try again later", CodeRateLimited})
		return
	}
	if perr != nil {
		var ref *Refused
		errors.As(perr, &ref)
		s.fail(w, src, http.StatusBadRequest, ref)
		return
	}
	s.redeem(w, r, src, secret, pub)
}

// redeem enrolls pub with secret and answers the result.
func (s *Server) redeem(w http.ResponseWriter, r *http.Request, src netip.Addr, secret [32]byte, pub keys.PublicKey) {
	resp, err := s.inv.Redeem(r.Context(), secret, pub)
	if err != nil {
		var ref *Refused
		if !errors.As(err, &ref) {
			ref = &Refused{CodeFailed, err.Error()}
		}
		status := http.StatusForbidden
		switch ref.Code {
		case CodeFailed:
			status = http.StatusUnprocessableEntity
		case CodeStale:
			status = http.StatusConflict
		}
		s.fail(w, src, status, ref)
		return
	}
	s.count("enrolled")
	s.log.Info("client enrolled with an invite", "client", resp.Name, "source", src.String(), "public_key", pub.String())
	reply(w, http.StatusOK, resp)
}

func (s *Server) fail(w http.ResponseWriter, src netip.Addr, status int, e *Refused) {
	s.count(string(e.Code))
	s.log.Warn("enrollment refused", "source", src.String(), "code", string(e.Code), "reason", e.Msg)
	reply(w, status, answerError{e.Msg, e.Code})
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
