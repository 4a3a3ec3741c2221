package daemon

import (
	"context"
	"fmt"

	"github.com/vgate-project/vgate/api"
)

// The control API's client, invite and BGP calls go to the gateway's
// components (p2s.Server, enroll.Component, bgp.Component) through the
// gateway's accessors; Reload, Drain and Routes, which change or plan,
// are the gateway's own. Every client and invite call first needs the
// running point-to-site server: the gateway's P2SServer says the gateway
// is stopped (api.CodeStopped), point_to_site is not configured
// (p2s.ErrNoP2S) or is disabled (p2s.ErrDisabled), both api.CodeNoP2S.

// AddClient registers a point-to-site client and returns its config. A
// pending invite holds its name: the client is refused until it is
// revoked.
func (s *server) AddClient(ctx context.Context, req api.AddClientRequest) (api.AddedClient, error) {
	srv, err := s.Gateway.P2SServer()
	if err != nil {
		return api.AddedClient{}, err
	}
	if s.Gateway.Enroll().PendingName(req.Name) {
		return api.AddedClient{}, api.WithCode(api.CodeConflict, fmt.Errorf("client %q: a pending invite holds this name (revoke it first: vgate client revoke %s)", req.Name, req.Name))
	}
	return srv.Add(req)
}

// Clients lists the point-to-site clients.
func (s *server) Clients(ctx context.Context) ([]api.ClientInfo, error) {
	srv, err := s.Gateway.P2SServer()
	if err != nil {
		return nil, err
	}
	return srv.Clients()
}

// RevokeClient removes a point-to-site client at once.
func (s *server) RevokeClient(ctx context.Context, name string) (api.ClientInfo, error) {
	srv, err := s.Gateway.P2SServer()
	if err != nil {
		return api.ClientInfo{}, err
	}
	return srv.Revoke(name)
}

// Invite creates a one-time invite for a new client of groups; it enrolls
// into the running point-to-site server (enroll.ErrNotConfigured, with
// api.CodeNoEnroll, without point_to_site.enroll).
func (s *server) Invite(ctx context.Context, req api.InviteRequest) (api.Invite, error) {
	srv, err := s.Gateway.P2SServer()
	if err != nil {
		return api.Invite{}, err
	}
	return s.Gateway.Enroll().Invite(req, srv)
}

// Invites lists the pending and recently spent invites.
func (s *server) Invites(ctx context.Context) ([]api.InviteInfo, error) {
	if _, err := s.Gateway.P2SServer(); err != nil {
		return nil, err
	}
	return s.Gateway.Enroll().List()
}

// RevokeInvite spends the pending invite of name.
func (s *server) RevokeInvite(ctx context.Context, name string) (api.InviteInfo, error) {
	if _, err := s.Gateway.P2SServer(); err != nil {
		return api.InviteInfo{}, err
	}
	return s.Gateway.Enroll().Revoke(name)
}

// BGP reports the speaker's sessions and the tunnel probes.
func (s *server) BGP(ctx context.Context) (api.BGPStatus, error) {
	return s.Gateway.Speaker().Observe(ctx)
}
