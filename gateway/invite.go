package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
)

// ErrNoEnroll: invites need point_to_site.enroll. It has
// api.CodeNoEnroll.
var ErrNoEnroll = api.WithCode(api.CodeNoEnroll, errors.New("point_to_site.enroll is not configured on this gateway: invites need the enrollment listener"))

// applyEnroll runs the enrollment listener the plan asks for
// (enroll.Component). It runs after applyP2S. g.mu is held.
func (g *Gateway) applyEnroll(ctx context.Context, st plan.State) error {
	var w enroll.Want
	if e := st.Enroll; e != nil {
		w = enroll.Want{Listen: e.Listen, URL: e.URL, StateDir: e.StateDir, Gateway: e.Gateway}
	}
	return g.enroll.Set(ctx, w)
}

// running is what an invite needs: the store, the URL and the pin.
type running struct {
	store *enroll.Store
	url   string
	pin   [32]byte
}

// invites returns the store and what invites carry, or why invites
// cannot be used now.
func (g *Gateway) invites() (*running, error) {
	if _, err := g.p2sServer(); err != nil {
		return nil, err
	}
	st, url, pin, ok := g.enroll.Running()
	if !ok {
		return nil, ErrNoEnroll
	}
	return &running{store: st, url: url, pin: pin}, nil
}

// Invite creates a one-time invite for a new client of groups.
func (g *Gateway) Invite(ctx context.Context, req api.InviteRequest) (api.Invite, error) {
	e, err := g.invites()
	if err != nil {
		return api.Invite{}, err
	}
	s, err := g.p2sServer()
	if err != nil {
		return api.Invite{}, err
	}
	groups := slices.Clone(req.Groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	if err := s.CheckClient(req.Name, groups); err != nil {
		return api.Invite{}, err
	}
	ttl := req.Expires
	if ttl == 0 {
		ttl = enroll.DefaultExpiry
	}
	// The token bounds what the enrolled laptop accepts from the answer:
	// what the invite's groups route now, and the pool.
	bound := enroll.FitBound(s.ClientRoutes(groups))
	inv, secret, err := e.store.Create(req.Name, groups, bound, ttl, time.Now(), s.Registered)
	if err != nil {
		if errors.As(err, new(*enroll.Conflict)) {
			return api.Invite{}, api.WithCode(api.CodeConflict, err)
		}
		return api.Invite{}, err
	}
	tok := enroll.Token{URL: e.url, Secret: secret, Pin: e.pin, Bound: bound}
	g.log.Info("point-to-site invite created", "client", inv.Name, "groups", inv.Groups, "expires", inv.Expires)
	return api.Invite{Name: inv.Name, Groups: inv.Groups, Token: tok.String(), URL: e.url, Pin: enroll.PinString(e.pin), Expires: inv.Expires}, nil
}

// Invites lists the pending and recently spent invites.
func (g *Gateway) Invites(ctx context.Context) ([]api.InviteInfo, error) {
	e, err := g.invites()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []api.InviteInfo
	for _, i := range e.store.List() {
		out = append(out, inviteInfo(i, now))
	}
	return out, nil
}

func inviteInfo(i enroll.Invite, now time.Time) api.InviteInfo {
	return api.InviteInfo{Name: i.Name, Groups: i.Groups, State: string(i.StateAt(now)), Created: i.Created, Expires: i.Expires, Used: i.Used, Revoked: i.Revoked}
}

// RevokeInvite spends the pending invite of name.
func (g *Gateway) RevokeInvite(ctx context.Context, name string) (api.InviteInfo, error) {
	e, err := g.invites()
	if err != nil {
		return api.InviteInfo{}, err
	}
	now := time.Now()
	i, err := e.store.Revoke(name, now)
	if err != nil {
		if errors.As(err, new(*enroll.NotFound)) {
			return api.InviteInfo{}, api.WithCode(api.CodeNotFound, err)
		}
		return api.InviteInfo{}, err
	}
	g.log.Info("point-to-site invite revoked", "client", name)
	return inviteInfo(i, now), nil
}

// pendingInvite reports whether name is reserved by a pending invite.
func (g *Gateway) pendingInvite(name string) bool {
	st := g.enroll.Store()
	return st != nil && st.Pending(name, time.Now())
}

// pendingSecret reports whether secret is a pending invite's (the
// listener's first question about every request).
func (g *Gateway) pendingSecret(secret [32]byte) bool {
	st := g.enroll.Store()
	return st != nil && st.PendingSecret(secret, time.Now())
}

// redeem enrolls pub with the invite of secret (enroll.RedeemFunc): the
// client is registered with the invite's name and groups and the laptop's
// own public key; the config goes back without a private key. An invite
// whose bound no longer covers what its groups route (the config changed
// since it was made) is refused and stays pending: the laptop would refuse
// the answer, and the client would be registered for nothing.
func (g *Gateway) redeem(ctx context.Context, secret [32]byte, pub keys.PublicKey) (enroll.Response, error) {
	st := g.enroll.Store()
	if st == nil {
		return enroll.Response{}, errors.New("enrollment is stopping")
	}
	inv, conf, err := st.Redeem(secret, time.Now(), func(inv enroll.Invite) (string, error) {
		s, err := g.p2sServer()
		if err != nil {
			return "", err
		}
		if inv.Bound != nil {
			if err := inv.Bound.Check(s.ClientRoutes(inv.Groups)); err != nil {
				return "", &enroll.Refused{Code: enroll.CodeStale, Msg: fmt.Sprintf("invite %q was made for what its groups routed then: %v; the gateway admin must revoke it and invite again", inv.Name, err)}
			}
		}
		added, err := s.Add(api.AddClientRequest{Name: inv.Name, Groups: inv.Groups, PublicKey: pub.String()})
		if err != nil {
			return "", fmt.Errorf("register the client: %w", err)
		}
		return added.Config, nil
	})
	return enroll.Response{Name: inv.Name, Config: conf}, err
}
