package enroll

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
)

// ErrNotConfigured: invites need point_to_site.enroll. It has
// api.CodeNoEnroll.
var ErrNotConfigured = api.WithCode(api.CodeNoEnroll, errors.New("point_to_site.enroll is not configured on this gateway: invites need the enrollment listener"))

// Clients is the point-to-site registry an invite enrolls into
// (p2s.Server).
type Clients interface {
	// Registered reports whether a client of that name exists.
	Registered(name string) bool
	// CheckClient refuses a name or groups a new client cannot have.
	CheckClient(name string, groups []string) error
	// ClientRoutes are the pool and what groups route now.
	ClientRoutes(groups []string) (pool, routes []netip.Prefix)
	// Add registers a client.
	Add(req api.AddClientRequest) (api.AddedClient, error)
}

// running is what an invite needs: the store, the URL and the pin, or
// ErrNotConfigured.
func (c *Component) running() (*Store, string, [32]byte, error) {
	st, url, pin, ok := c.Running()
	if !ok {
		return nil, "", pin, ErrNotConfigured
	}
	return st, url, pin, nil
}

// Invite creates a one-time invite for a new client of req.Groups in
// clients. The token bounds what the enrolled laptop accepts from the
// answer: what the invite's groups route now, and the pool.
func (c *Component) Invite(req api.InviteRequest, clients Clients) (api.Invite, error) {
	store, url, pin, err := c.running()
	if err != nil {
		return api.Invite{}, err
	}
	groups := slices.Clone(req.Groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	if err := clients.CheckClient(req.Name, groups); err != nil {
		return api.Invite{}, err
	}
	ttl := req.Expires
	if ttl == 0 {
		ttl = DefaultExpiry
	}
	bound := FitBound(clients.ClientRoutes(groups))
	inv, secret, err := store.Create(req.Name, groups, bound, ttl, time.Now(), clients.Registered)
	if err != nil {
		if errors.As(err, new(*Conflict)) {
			return api.Invite{}, api.WithCode(api.CodeConflict, err)
		}
		return api.Invite{}, err
	}
	tok := Token{URL: url, Secret: secret, Pin: pin, Bound: bound}
	c.log.Info("point-to-site invite created", "client", inv.Name, "groups", inv.Groups, "expires", inv.Expires)
	return api.Invite{Name: inv.Name, Groups: inv.Groups, Token: tok.String(), URL: url, Pin: PinString(pin), Expires: inv.Expires}, nil
}

// List is the pending and recently spent invites.
func (c *Component) List() ([]api.InviteInfo, error) {
	store, _, _, err := c.running()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []api.InviteInfo
	for _, i := range store.List() {
		out = append(out, inviteInfo(i, now))
	}
	return out, nil
}

func inviteInfo(i Invite, now time.Time) api.InviteInfo {
	return api.InviteInfo{Name: i.Name, Groups: i.Groups, State: string(i.StateAt(now)), Created: i.Created, Expires: i.Expires, Used: i.Used, Revoked: i.Revoked}
}

// Revoke spends the pending invite of name.
func (c *Component) Revoke(name string) (api.InviteInfo, error) {
	store, _, _, err := c.running()
	if err != nil {
		return api.InviteInfo{}, err
	}
	now := time.Now()
	i, err := store.Revoke(name, now)
	if err != nil {
		if errors.As(err, new(*NotFound)) {
			return api.InviteInfo{}, api.WithCode(api.CodeNotFound, err)
		}
		return api.InviteInfo{}, err
	}
	c.log.Info("point-to-site invite revoked", "client", name)
	return inviteInfo(i, now), nil
}

// PendingName reports whether name is reserved by a pending invite.
func (c *Component) PendingName(name string) bool {
	st := c.Store()
	return st != nil && st.Pending(name, time.Now())
}

// PendingSecret reports whether secret is a pending invite's (the
// listener's first question about every request: Invites.Pending).
func (c *Component) PendingSecret(secret [32]byte) bool {
	st := c.Store()
	return st != nil && st.PendingSecret(secret, time.Now())
}

// Redeem enrolls pub with the invite of secret (the gateway's RedeemFunc):
// the client is registered in the registry clients returns, with the
// invite's name and groups and the laptop's own public key; the config
// goes back without a private key. An invite whose bound no longer covers
// what its groups route (the config changed since it was made) is refused
// and stays pending: the laptop would refuse the answer, and the client
// would be registered for nothing.
func (c *Component) Redeem(_ context.Context, secret [32]byte, pub keys.PublicKey, clients func() (Clients, error)) (Response, error) {
	st := c.Store()
	if st == nil {
		return Response{}, errors.New("enrollment is stopping")
	}
	inv, conf, err := st.Redeem(secret, time.Now(), func(inv Invite) (string, error) {
		s, err := clients()
		if err != nil {
			return "", err
		}
		if inv.Bound != nil {
			if err := inv.Bound.Check(s.ClientRoutes(inv.Groups)); err != nil {
				return "", &Refused{Code: CodeStale, Msg: fmt.Sprintf("invite %q was made for what its groups routed then: %v; the gateway admin must revoke it and invite again", inv.Name, err)}
			}
		}
		added, err := s.Add(api.AddClientRequest{Name: inv.Name, Groups: inv.Groups, PublicKey: pub.String()})
		if err != nil {
			return "", fmt.Errorf("register the client: %w", err)
		}
		return added.Config, nil
	})
	return Response{Name: inv.Name, Config: conf}, err
}
