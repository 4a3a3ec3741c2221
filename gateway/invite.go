package gateway

import (
	"context"

	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
)

// Invites are the enrollment component's (enroll.Component, set to the
// plan's listener after point-to-site); they enroll into the running
// point-to-site server, so each first needs one (P2SServer).

// applyEnroll runs the enrollment listener the plan asks for. It runs
// after the point-to-site server is set. g.mu is held.
func (g *Gateway) applyEnroll(ctx context.Context, st plan.State) error {
	var w enroll.Want
	if e := st.Enroll; e != nil {
		w = enroll.Want{Listen: e.Listen, URL: e.URL, StateDir: e.StateDir, Gateway: e.Gateway}
	}
	return g.enroll.Set(ctx, w)
}

// Enroll is the enrollment component, for the control API's invite
// calls (each first needs P2SServer).
func (g *Gateway) Enroll() *enroll.Component { return g.enroll }

// pendingSecret is enroll.Invites.Pending.
func (g *Gateway) pendingSecret(secret [32]byte) bool { return g.enroll.PendingSecret(secret) }

// redeem is enroll.Invites.Redeem: the client goes into the running
// point-to-site server.
func (g *Gateway) redeem(ctx context.Context, secret [32]byte, pub keys.PublicKey) (enroll.Response, error) {
	return g.enroll.Redeem(ctx, secret, pub, func() (enroll.Clients, error) { return g.P2SServer() })
}
