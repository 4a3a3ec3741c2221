// Package control owns the gateway's control socket: HTTP+JSON on a unix
// socket that only root may open (mode 0600), the server side that routes
// requests to the running gateway and the client side the CLI uses.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// API is what the control socket exposes.
type API interface {
	Status() any
	Reload() error
}

// Error is the JSON body of a failed request.
type Error struct {
	Error string `json:"error"`
}

// Handler routes control requests to api.
func Handler(api API) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Status())
	})
	m.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := api.Reload(); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, Error{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Result string `json:"result"`
		}{"reloaded"})
	})
	handleCapture(m, api) // capture.go: GET /v1/capture if api is a Capturer
	handleClients(m, api) // clients.go: /v1/clients if api is a ClientAPI
	handleRouting(m, api) // bgp.go: /v1/bgp, /v1/routes if api is a RoutingAPI
	return m
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Server is a running control socket.
type Server struct {
	path string
	ln   net.Listener
	srv  *http.Server
}

// Listen opens the control socket at path. A leftover socket file from a
// dead gateway is replaced; a socket some live gateway still answers on is
// an error (two gateways must not share one).
func Listen(path string, h http.Handler) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control_socket %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control_socket %s: another gateway is listening there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control_socket %s: remove stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control_socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control_socket %s: %w", path, err)
	}
	s := &Server{path: path, ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server and removes the socket file.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	os.Remove(s.path)
	return err
}

// Client talks to a gateway's control socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{
		Socket: path,
		hc: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", path)
				},
			},
		},
	}
}

// Do sends a request and decodes a JSON answer into out (if not nil).
// Transport errors name the socket and hint at the usual causes.
func (c *Client) Do(method, path string, out any) error {
	return c.DoJSON(method, path, nil, out)
}

// DoJSON is Do with in (if not nil) sent as the JSON request body.
func (c *Client) DoJSON(method, path string, in, out any) error {
	var reqBody io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		reqBody = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, "http://vgate"+path, reqBody)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var hint string
		switch {
		case errors.Is(err, os.ErrNotExist), strings.Contains(err.Error(), "no such file"):
			hint = " (is the gateway running? pass --socket or --config)"
		case errors.Is(err, os.ErrPermission), strings.Contains(err.Error(), "permission denied"):
			hint = " (the control socket is root only)"
		case strings.Contains(err.Error(), "connection refused"):
			hint = " (no gateway is listening there)"
		}
		return fmt.Errorf("control socket %s: %w%s", c.Socket, err, hint)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.Socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("control socket %s: %s", c.Socket, resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("control socket %s: bad answer: %w", c.Socket, err)
	}
	return nil
}
