package bgp

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/statefile"
	"github.com/vgate-project/vgate/routing"
)

// A drain makes the gateway least preferred without touching its tunnels
// or routes: the speaker announces every route with GRACEFUL_SHUTDOWN and
// a longer AS path (routing.State.Drain), and the tunnel probe tells vgate
// peers, which route around it where they have another path and say so
// back (probeAvoids). Status reports "drained" once every established
// peer has moved: the moment a planned stop loses nothing.

// drainFile in state_dir records a drain made by `vgate drain`, so that a
// gateway stopped for maintenance starts drained again until `vgate drain
// --undo`.
const drainFile = "drain"

// drainState is whether the gateway drains, since when, and whether the
// drain is recorded in state_dir.
type drainState struct {
	on        bool
	since     time.Time
	persisted bool
}

func drainPath(cfg *config.Config) string { return filepath.Join(cfg.StateDir, drainFile) }

// loadDrain is the drain a gateway starts with: bgp.drain, or a drain
// recorded by an earlier run.
func loadDrain(cfg *config.Config, log *slog.Logger) drainState {
	if cfg.BGP == nil {
		return drainState{}
	}
	d := drainState{on: cfg.BGP.Drain, since: time.Now()}
	if b, err := os.ReadFile(drainPath(cfg)); err == nil && cfg.StateDir != "" {
		d.on, d.persisted = true, true
		if t, err := time.Parse(time.RFC3339Nano, string(b)); err == nil {
			d.since = t
		}
	}
	if d.on {
		log.Warn("starting drained: routes are announced least preferred until vgate drain --undo", "config", cfg.BGP.Drain, "recorded", d.persisted)
	}
	return d
}

// reloaded is the drain after a reload from old to cfg: a change of
// bgp.drain drains or undrains; a recorded drain stays.
func (d drainState) reloaded(old, cfg *config.Config, now time.Time) drainState {
	was := old.BGP != nil && old.BGP.Drain
	want := cfg.BGP != nil && cfg.BGP.Drain
	switch {
	case cfg.BGP == nil:
		return drainState{}
	case want == was:
		return d
	case want && !d.on:
		return drainState{on: true, since: now}
	case !want && !d.persisted:
		return drainState{}
	}
	return d
}

// LoadDrain sets the drain the gateway starts with (loadDrain). Call it
// once, before the first Set.
func (c *Component) LoadDrain(cfg *config.Config) {
	d := loadDrain(cfg, c.log)
	c.mu.Lock()
	c.drain = d
	c.mu.Unlock()
}

// Draining reports whether the gateway drains (plan.Input.Drain).
func (c *Component) Draining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drain.on
}

// ReloadDrain moves the drain to a reload from old to cfg (reloaded);
// undo puts the previous one back (the reload is rolled back).
func (c *Component) ReloadDrain(old, cfg *config.Config) (undo func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.drain
	c.drain = prev.reloaded(old, cfg, time.Now())
	return func() {
		c.mu.Lock()
		c.drain = prev
		c.mu.Unlock()
	}
}

// SetDrain starts (on) or ends a drain (vgate drain) and records it in
// cfg's state_dir; the caller then plans and applies it. undo puts the
// previous drain back, in state_dir too (the apply failed); changed says
// whether on differs from before.
func (c *Component) SetDrain(cfg *config.Config, on bool) (undo func(), changed bool, err error) {
	if cfg.BGP == nil {
		return nil, false, api.WithCode(api.CodeBadRequest,
			errors.New("drain: the gateway has no bgp section: its routes are static and there is nothing to announce less preferred"))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.drain
	next := drainState{on: on, since: prev.since, persisted: on}
	if on != prev.on || next.since.IsZero() {
		next.since = time.Now()
	}
	if err := recordDrain(cfg, next); err != nil {
		return nil, false, err
	}
	c.drain = next
	return func() {
		c.mu.Lock()
		c.drain = prev
		c.mu.Unlock()
		_ = recordDrain(cfg, prev)
	}, on != prev.on, nil
}

// DrainStatus is the drain as Status reports it (drainStatus), nil when
// not draining or without a speaker. sessions are the speaker's sessions
// by name.
func (c *Component) DrainStatus(sessions map[string]routing.NeighborStatus) *api.DrainStatus {
	c.mu.Lock()
	d := c.drain
	c.mu.Unlock()
	if !d.on || c.running() == nil {
		return nil
	}
	return drainStatus(d, c.announced(), sessions, c.Probes())
}

// recordDrain writes d's drain to state_dir, or removes it.
func recordDrain(cfg *config.Config, d drainState) error {
	if cfg.StateDir == "" {
		return nil
	}
	if d.persisted {
		if err := statefile.WriteAtomic(drainPath(cfg), []byte(d.since.UTC().Format(time.RFC3339Nano))); err != nil {
			return fmt.Errorf("drain: state_dir: %w", err)
		}
		return nil
	}
	if err := os.Remove(drainPath(cfg)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("drain: state_dir: %w", err)
	}
	return nil
}

// drainStatus is the drain as Status reports it (nil when not draining).
// announced: the speaker runs with the drain applied. A peering waits
// while its session is established and either the routes were not yet
// re-sent, or its peer runs vgate and its probes do not say yet that its
// routes avoid this gateway.
func drainStatus(d drainState, announced bool, sessions map[string]routing.NeighborStatus, probes []api.ProbeStatus) *api.DrainStatus {
	if !d.on {
		return nil
	}
	st := &api.DrainStatus{State: api.Drained, Since: d.since, Persisted: d.persisted}
	byName := map[string]api.ProbeStatus{}
	for _, p := range probes {
		byName[p.Peering] = p
	}
	for name, n := range sessions {
		if n.State != api.SessionEstablished {
			continue
		}
		if p := byName[name]; !announced || p.Vgate && !p.Avoids {
			st.Waiting = append(st.Waiting, name)
		}
	}
	slices.Sort(st.Waiting)
	if len(st.Waiting) > 0 {
		st.State = api.Draining
	}
	return st
}
