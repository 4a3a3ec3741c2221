package enroll

import (
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

	"github.com/vgate-project/vgate/gateway/keys"
)

// Path is the enrollment endpoint.
const Path = "/v1/enroll"

// Request is what a laptop sends: the token's secret and its own public
// key (both base64). Nothing else leaves the laptop.
type Request struct {
	Secret    string `json:"secret"`
	PublicKey string `json:"public_key"`
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

// Server is the enrollment HTTPS listener.
type Server struct {
	addr      string
	boundAddr string // what the listener got (port 0 in tests)
	srv       *http.Server
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

// Listen serves enrollment on addr (host:port) with cert. On error
// nothing listens.
func Listen(addr string, cert tls.Certificate, redeem RedeemFunc, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("point_to_site.enroll.listen %s: %w", addr, err)
	}
	s := &Server{addr: addr, boundAddr: ln.Addr().String(), log: log, limit: NewLimiter(), now: time.Now, attempts: map[string]uint64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, func(w http.ResponseWriter, r *http.Request) { s.enroll(w, r, redeem) })
	s.srv = &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go s.srv.ServeTLS(ln, "", "")
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

func (s *Server) enroll(w http.ResponseWriter, r *http.Request, redeem RedeemFunc) {
	src := remoteAddr(r)
	s.mu.Lock()
	ok := s.limit.Take(src, s.now()) // charged as a failure until it succeeds
	s.mu.Unlock()
	if !ok {
		s.count(string(CodeRateLimited))
		w.Header().Set("Retry-After", fmt.Sprint(int(Refill/time.Second)))
		reply(w, http.StatusTooManyRequests, answerError{"too many failed enrollment attempts; try again later", CodeRateLimited})
		return
	}
	fail := func(status int, e *Refused) {
		s.count(string(e.Code))
		s.log.Warn("enrollment refused", "source", src.String(), "code", string(e.Code), "reason", e.Msg)
		reply(w, status, answerError{e.Msg, e.Code})
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(http.StatusBadRequest, &Refused{CodeBadRequest, "bad request: want JSON {secret, public_key}"})
		return
	}
	var secret [32]byte
	if b, err := base64.StdEncoding.DecodeString(req.Secret); err != nil || len(b) != len(secret) {
		fail(http.StatusBadRequest, &Refused{CodeBadRequest, "bad request: secret is not 32 bytes of base64"})
		return
	} else {
		copy(secret[:], b)
	}
	pub, err := keys.ParsePublic(req.PublicKey)
	if err != nil {
		fail(http.StatusBadRequest, &Refused{CodeBadRequest, "bad request: public_key: " + err.Error()})
		return
	}
	resp, err := redeem(r.Context(), secret, pub)
	if err != nil {
		var ref *Refused
		if !errors.As(err, &ref) {
			ref = &Refused{CodeFailed, err.Error()}
		}
		status := http.StatusForbidden
		if ref.Code == CodeFailed {
			status = http.StatusUnprocessableEntity
		}
		fail(status, ref)
		return
	}
	s.mu.Lock()
	s.limit.Refund(src, s.now())
	s.attempts["enrolled"]++
	s.mu.Unlock()
	s.log.Info("client enrolled with an invite", "client", resp.Name, "source", src.String(), "public_key", pub.String())
	reply(w, http.StatusOK, resp)
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
