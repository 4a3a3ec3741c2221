package bgp

import (
	"slices"

	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/route"
)

// ImportFacts are the facts of the running system the import filter
// protects and that change without a config or RIB change (plan.Input's
// Endpoints and Connected): the tunnels' current endpoints (roaming), the
// connected point-to-site clients and the host's connected subnets. The
// gateway gathers them from its running parts; the Component keeps those
// the last successful plan was made with, so that the check every
// ImportRefresh re-plans only when they moved.
type ImportFacts struct {
	Endpoints []plan.UnderlayEndpoint
	Connected []route.Connected
}

// Equal reports whether a and b are the same facts, in the same order.
func (a ImportFacts) Equal(b ImportFacts) bool {
	return slices.Equal(a.Endpoints, b.Endpoints) && slices.Equal(a.Connected, b.Connected)
}

// Planning forgets the facts last planned with: an apply is under way,
// and if it fails the next check re-plans.
func (c *Component) Planning() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.factsOK = false
}

// Planned records the facts a successful apply planned with.
func (c *Component) Planned(f ImportFacts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.facts, c.factsOK = f, true
}

// FactsMoved reports whether a check has anything to re-plan for: the
// facts now (gather, called only when there are facts to compare with)
// differ from those last planned with, or the last apply failed.
func (c *Component) FactsMoved(gather func() ImportFacts) bool {
	c.mu.Lock()
	prev, ok := c.facts, c.factsOK
	c.mu.Unlock()
	if !ok {
		return true
	}
	return !prev.Equal(gather())
}
