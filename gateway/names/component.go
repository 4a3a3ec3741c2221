package names

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/names/zone"
)

// Component is the name server as one running part of the gateway: Set
// moves it to the plan's zone, Observe is its status, Close stops it.
type Component struct {
	dir func() Directory
	log *slog.Logger

	mu sync.Mutex
	s  *Server
}

// NewComponent returns a stopped name server; dir returns the current
// client directory (read per query).
func NewComponent(dir func() Directory, log *slog.Logger) *Component {
	return &Component{dir: dir, log: log}
}

// Set makes the server answer z: it listens on z's tunnel address (UDP
// and TCP 53) when z appears, takes a changed zone at once, moves when the
// tunnel address moves and stops when z is nil (dns removed). The tunnel
// address must be on its interface already.
func (c *Component) Set(_ context.Context, z *zone.Zone) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case z == nil && c.s == nil:
		return nil
	case z == nil:
		c.closeLocked()
		c.log.Info("dns stopped (dns removed from the config)")
		return nil
	case c.s != nil && c.s.Addr() == z.TunnelAddress:
		c.s.SetZone(z)
		return nil
	}
	c.closeLocked()
	s, err := Listen(z.TunnelAddress, 0, z, c.dir, c.log)
	if err != nil {
		return err
	}
	c.s = s
	return nil
}

// Observe is the name server section of the gateway's status, or nil when
// it does not run.
func (c *Component) Observe() *api.DNSStatus {
	c.mu.Lock()
	s := c.s
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	return &api.DNSStatus{Address: s.Addr(), Zone: strings.TrimSuffix(s.Zone().Zone, "."), Queries: s.Counts()}
}

// Close stops the server, if it runs.
func (c *Component) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
}

func (c *Component) closeLocked() {
	if c.s != nil {
		c.s.Close()
		c.s = nil
	}
}
