package gateway

import (
	"errors"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/overlap"
	"github.com/vgate-project/vgate/peering"
)

// errStopped: the gateway is shutting down.
var errStopped = api.WithCode(api.CodeStopped, errors.New("gateway is stopped"))

// refusalReasons classifies why err refused a reload, by the errors'
// types, never their text: one entry per distinct reason, in
// RefusalReasons order. An error that is not a refusal (applying a valid
// config failed) yields none.
func refusalReasons(err error) []api.RefusalReason {
	if err == nil {
		return nil
	}
	found := map[api.RefusalReason]bool{}
	var errs config.Errors
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			switch {
			case errors.Is(e, peering.ErrTunnelLimit):
				found[api.RefusedTunnelLimit] = true
			case errors.As(e, new(overlap.Conflict)):
				found[api.RefusedOverlap] = true
			default:
				found[api.RefusedInvalid] = true
			}
		}
	case errors.Is(err, peering.ErrTunnelLimit):
		found[api.RefusedTunnelLimit] = true
	case errors.Is(err, plan.ErrRestartRequired):
		found[api.RefusedRestartRequired] = true
	case errors.Is(err, config.ErrUnreadable):
		found[api.RefusedInvalid] = true
	}
	var out []api.RefusalReason
	for _, r := range api.RefusalReasons {
		if found[r] {
			out = append(out, r)
		}
	}
	return out
}

// countRefusals records the reasons err refused a reload. g.mu is held.
func (g *Gateway) countRefusals(err error) {
	for _, r := range refusalReasons(err) {
		g.countReason(r)
	}
}

func (g *Gateway) countReason(r api.RefusalReason) {
	if g.refusals == nil {
		g.refusals = make(map[api.RefusalReason]uint64)
	}
	g.refusals[r]++
	g.log.Info("reload refused", "reason", r)
}
