package gateway

import (
	"context"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
)

// ErrNoEnroll: invites need point_to_site.enroll. It has
// api.CodeNoEnroll.
var ErrNoEnroll = enroll.ErrNotConfigured

// Invites are the enrollment component's (enroll.Component, set to the
// plan's listener after point-to-site); they enroll into the running
// point-to-site server, so each first needs one (p2sServer).

// applyEnroll runs the enrollment listener the plan asks for. It runs
// after the point-to-site server is set. g.mu is held.
func (g *Gateway) applyEnroll(ctx context.Context, st plan.State) error {
	var w enroll.Want
	if e := st.Enroll; e != nil {
		w = enroll.Want{Listen: e.Listen, URL: e.URL, StateDir: e.StateDir, Gateway: e.Gateway}
	}
	return g.enroll.Set(ctx, w)
}

// Invite creates a one-time invite for a new client of groups.
func (g *Gateway) Invite(ctx context.Context, req api.InviteRequest) (api.Invite, error) {
	s, err := g.p2sServer()
	if err != nil {
		return api.Invite{}, err
	}
	return g.enroll.Invite(req, s)
}

// Invites lists the pending and recently spent invites.
func (g *Gateway) Invites(ctx context.Context) ([]api.InviteInfo, error) {
	if _, err := g.p2sServer(); err != nil {
		return nil, err
	}
	return g.enroll.List()
}

// RevokeInvite spends the pending invite of name.
func (g *Gateway) RevokeInvite(ctx context.Context, name string) (api.InviteInfo, error) {
	if _, err := g.p2sServer(); err != nil {
		return api.InviteInfo{}, err
	}
	return g.enroll.Revoke(name)
}

// pendingSecret is enroll.Invites.Pending.
func (g *Gateway) pendingSecret(secret [32]byte) bool { return g.enroll.PendingSecret(secret) }

// redeem is enroll.Invites.Redeem: the client goes into the running
// point-to-site server.
func (g *Gateway) redeem(ctx context.Context, secret [32]byte, pub keys.PublicKey) (enroll.Response, error) {
	return g.enroll.Redeem(ctx, secret, pub, func() (enroll.Clients, error) { return g.p2sServer() })
}
