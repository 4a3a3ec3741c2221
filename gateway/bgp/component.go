// Package bgp is the gateway's BGP side as one running part: the embedded
// speaker (routing.Speaker), the in-tunnel liveness probe and BFD, what
// they learned of each peering (dead, held, vgate or plain peer,
// draining), the RIB learned last, the gateway's own drain (vgate drain,
// bgp.drain, recorded in state_dir), the import filter's facts the last
// plan was made with (importfacts.go), and the loop that asks the gateway
// to plan again when the RIB changes, a probe or BFD verdict comes, or the
// import filter's facts are due for a check.
//
// Locks: the gateway holds its own lock while it plans and calls Set,
// Close and the fact accessors (Learned, ProbeFacts, Draining); each takes
// the Component's lock, never the other way round. The Component's loop
// and the probe's and BFD's callbacks ask for a re-plan through the
// Replan callback with none of the Component's locks held; the callback
// takes the gateway's lock. The views (Observe, Sessions, Probes, Held,
// DrainStatus) take only the Component's lock.
package bgp

import (
	"context"
	"log/slog"
	"reflect"
	"sync"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/routing"
)

// Why says what a re-plan request is for.
type Why int

const (
	// RIBChanged: the speaker's RIB changed (debounced); Learned has the
	// new snapshot.
	RIBChanged Why = iota
	// Verdict: a probe or BFD verdict; the dead peering's routes go at
	// once, with the RIB last read.
	Verdict
	// ImportFactsDue: ImportRefresh has passed; the gateway re-plans if
	// the facts the import filter protects moved.
	ImportFactsDue
)

// String is what the gateway logs when the re-plan fails.
func (w Why) String() string {
	switch w {
	case RIBChanged:
		return "bgp: applying learned routes"
	case Verdict:
		return "bgp: applying a tunnel probe verdict"
	case ImportFactsDue:
		return "bgp: refreshing the import filter"
	}
	return "bgp: re-planning"
}

// Replan asks the gateway to plan again and apply (it takes the gateway's
// lock). ctx is the speaker's run: once that speaker is stopped (Set
// without BGP, a new identity, Close: all under the gateway's lock) ctx
// is done and the request must do nothing.
type Replan func(ctx context.Context, why Why)

// Component is the gateway's BGP side (package doc). It exists for the
// gateway's life; its speaker runs while the plan has a BGP part.
type Component struct {
	ctx    context.Context // the gateway's life: the speaker's loops end with it
	log    *slog.Logger
	replan Replan

	mu      sync.Mutex
	rt      *runtime        // nil without bgp (speaker.go)
	learned []routing.Route // the speaker's last RIB snapshot
	drain   drainState      // drain.go
	// facts are the import filter's facts the last successful plan was
	// made with; factsOK is false while planning and after a failure
	// (importfacts.go).
	facts   ImportFacts
	factsOK bool
}

// New returns a Component with no speaker. ctx lives as long as the
// gateway; replan is how the Component asks it to plan again.
func New(ctx context.Context, replan Replan, log *slog.Logger) *Component {
	return &Component{ctx: ctx, log: log, replan: replan}
}

// Set starts, reconfigures or stops the speaker, the probe and BFD to
// match want (nil: no bgp). Only what differs changes: a re-plan that
// moves no route touches nothing. A new identity (AS, router ID, tunnel
// address) restarts the speaker. The tunnels and the tunnel address are
// in place. Called with the gateway's lock held.
func (c *Component) Set(ctx context.Context, want *plan.BGP) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if want == nil {
		c.stopLocked(false)
		return nil
	}
	if c.rt != nil && c.rt.id != want.Identity {
		c.log.Info("bgp identity or tunnel address changed: restarting the speaker")
		c.stopLocked(false)
	}
	if c.rt == nil {
		b, err := c.start(want.Identity) // speaker.go
		if err != nil {
			return err
		}
		c.rt = b
	}
	b := c.rt
	b.setTargets(ctx, want, c.log)
	if b.applied != nil && reflect.DeepEqual(*b.applied, want.Speaker) {
		return nil // a RIB change re-plans; the speaker's own state is unchanged
	}
	if err := b.speaker.Set(ctx, want.Speaker); err != nil {
		b.applied = nil
		return err
	}
	sp := want.Speaker
	b.applied = &sp
	b.poke()
	return nil
}

// Close stops the speaker, the probe and BFD. graceful (a planned stop
// with bgp.graceful_restart) ends the sessions without a NOTIFICATION:
// the peers that help keep this gateway's routes.
func (c *Component) Close(graceful bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked(graceful)
}

// stopLocked stops the speaker (its sessions end; the routes they gave
// are removed by the next apply). The loop may be waiting for the
// gateway's lock in Replan: it is not waited for; its context is done, so
// the request does nothing. c.mu is held.
func (c *Component) stopLocked(graceful bool) {
	b := c.rt
	if b == nil {
		return
	}
	c.rt, c.learned = nil, nil
	b.stop(graceful, c.log)
}

// Learned is the speaker's last RIB snapshot (plan.Input.Learned).
func (c *Component) Learned() []routing.Route {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.learned
}

// setLearned keeps rib as the last snapshot if b still runs.
func (c *Component) setLearned(b *runtime, rib []routing.Route) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rt != b {
		return false
	}
	c.learned = rib
	return true
}

// running is the speaker's runtime, nil without bgp.
func (c *Component) running() *runtime {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rt
}

// ProbeFacts is what the probe and BFD learned, for the planner
// (plan.Input's ProbeDead, VgatePeers, PlainPeers, DrainingPeers; copies,
// nil without a speaker): a path is dead when either says so.
func (c *Component) ProbeFacts() (dead, vgate, plain, draining map[string]bool) {
	if b := c.running(); b != nil {
		return b.probeFacts()
	}
	return nil, nil, nil, nil
}

// Held is the peerings whose tunnel the probe found dead after it had
// answered (a copy; nil without a speaker).
func (c *Component) Held() map[string]bool {
	if b := c.running(); b != nil {
		return b.heldTunnels()
	}
	return nil
}

// Sessions is the speaker's sessions without their routes (cheap enough
// for a status every second); nil without a speaker.
func (c *Component) Sessions(ctx context.Context) ([]routing.NeighborStatus, error) {
	if b := c.running(); b != nil {
		return b.speaker.Sessions(ctx)
	}
	return nil, nil
}

// Probes is the tunnel probes' status; nil without a speaker.
func (c *Component) Probes() []api.ProbeStatus {
	if b := c.running(); b != nil {
		return b.probe.Status()
	}
	return nil
}

// RIB is the speaker's RIB now (every route received, accepted or
// rejected); ok is false without a speaker.
func (c *Component) RIB(ctx context.Context) (_ []routing.Route, ok bool, _ error) {
	b := c.running()
	if b == nil {
		return nil, false, nil
	}
	rib, err := b.speaker.Snapshot(ctx)
	if err != nil {
		return nil, true, err
	}
	return rib.Routes, true, nil
}

// Observe is `vgate bgp`: the speaker's sessions, the tunnel probes and
// BFD. Without a speaker it is the empty, disabled status.
func (c *Component) Observe(ctx context.Context) (api.BGPStatus, error) {
	b := c.running()
	if b == nil {
		return api.BGPStatus{Neighbors: []api.NeighborStatus{}, Probes: []api.ProbeStatus{}}, nil
	}
	rib, err := b.speaker.Snapshot(ctx)
	if err != nil {
		return api.BGPStatus{}, err
	}
	return api.BGPStatus{Enabled: true, ASN: b.id.ASN, RouterID: b.id.RouterID,
		Neighbors: rib.Neighbors, Probes: b.probe.Status(),
		BFD: b.bfd.Status(), BFDDropped: b.bfd.Dropped()}, nil
}

// announced reports whether the speaker runs with the drain applied.
func (c *Component) announced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rt != nil && c.rt.applied != nil && c.rt.applied.Drain
}
