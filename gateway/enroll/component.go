package enroll

import (
	"context"
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/api"
)

// Want is the enrollment side a gateway should run; the zero Want stops
// the listener.
type Want struct {
	Listen string // the HTTPS listener's address (point_to_site.enroll.listen)
	URL    string // where invites send laptops
	// StateDir and Gateway locate the invite store and the certificate
	// and name the latter; both are read on first use only.
	StateDir, Gateway string
}

// Component is a gateway's enrollment side as one running part: the
// invite store, the certificate (created in state_dir on first use) and
// the HTTPS listener. Set moves it to a Want, Observe is its status,
// Close stops the listener; the store stays open for the gateway's life.
type Component struct {
	invites Invites
	log     *slog.Logger

	// store is set once, on first use; the listener's handlers read it
	// without the lock, which Close holds while they finish.
	store atomic.Pointer[Store]

	mu   sync.Mutex
	cert tls.Certificate
	pin  [32]byte
	srv  *Server
	url  string
}

// NewComponent returns an enrollment side with no listener; inv answers
// the listener's questions about invites.
func NewComponent(inv Invites, log *slog.Logger) *Component {
	return &Component{invites: inv, log: log}
}

// Set runs the listener on w.Listen (moving it when the address changed),
// or stops it for the zero Want.
func (c *Component) Set(_ context.Context, w Want) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.Listen == "" {
		c.closeLocked()
		return nil
	}
	if c.store.Load() == nil {
		s, err := OpenStore(filepath.Join(w.StateDir, StoreFile))
		if err != nil {
			return err
		}
		c.store.Store(s)
	}
	if c.cert.Certificate == nil {
		cert, pin, err := LoadOrCreateCert(w.StateDir, w.Gateway)
		if err != nil {
			return err
		}
		c.cert, c.pin = cert, pin
	}
	c.url = w.URL
	if c.srv != nil && c.srv.Addr() == w.Listen {
		return nil
	}
	c.closeLocked()
	srv, err := Listen(w.Listen, c.cert, c.invites, c.log)
	if err != nil {
		return err
	}
	c.srv = srv
	c.log.Info("invites enroll at", "url", c.url, "pin", PinString(c.pin))
	return nil
}

// Running is the store, the URL and the pin while the listener runs; ok
// is false when it does not (invites cannot be made or listed then).
func (c *Component) Running() (store *Store, url string, pin [32]byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.store.Load()
	if c.srv == nil || st == nil {
		return nil, "", pin, false
	}
	return st, c.url, c.pin, true
}

// Store is the invite store, nil before the first Set that runs the
// listener.
func (c *Component) Store() *Store { return c.store.Load() }

// Observe is the enrollment section of the gateway's status, or nil when
// the listener does not run.
func (c *Component) Observe() *api.EnrollStatus {
	c.mu.Lock()
	srv, store, url, pin := c.srv, c.store.Load(), c.url, c.pin
	c.mu.Unlock()
	if srv == nil {
		return nil
	}
	st := &api.EnrollStatus{Listen: srv.Addr(), URL: url, Pin: PinString(pin), Attempts: srv.Attempts()}
	now := time.Now()
	for _, i := range store.List() {
		if i.StateAt(now) == Pending {
			st.Pending++
		}
	}
	return st
}

// Close stops the listener.
func (c *Component) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
}

func (c *Component) closeLocked() {
	if c.srv != nil {
		c.srv.Close()
		c.srv = nil
	}
}
