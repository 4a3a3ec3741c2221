package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/vgate-project/vgate/api"
)

// Client talks to a gateway's control socket. Its methods return the
// gateway's errors with their code (errors.Is(err, api.CodeNoP2S)), and
// transport errors wrapped so that errors.Is finds the cause
// (syscall.ENOENT: no socket; syscall.ECONNREFUSED: nobody listening;
// syscall.EACCES: not allowed to open it).
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{
		Socket: path,
		hc: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", path)
				},
			},
		},
	}
}

// Status is the gateway's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var v api.Status
	return v, c.do(ctx, "GET", "/v1/status", nil, &v)
}

// Reload makes the gateway re-read its config; the error says why a
// refused config was refused (api.CodeReloadFailed).
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/reload", nil, nil)
}

// Drain starts (req.Drain) or ends the gateway's drain.
func (c *Client) Drain(ctx context.Context, req api.DrainRequest) (api.DrainStatus, error) {
	var v api.DrainStatus
	return v, c.do(ctx, "POST", "/v1/drain", req, &v)
}

// BGP is the speaker's sessions and the tunnel probes.
func (c *Client) BGP(ctx context.Context) (api.BGPStatus, error) {
	var v api.BGPStatus
	return v, c.do(ctx, "GET", "/v1/bgp", nil, &v)
}

// Routes is the effective route table.
func (c *Client) Routes(ctx context.Context) (api.RoutesView, error) {
	var v api.RoutesView
	return v, c.do(ctx, "GET", "/v1/routes", nil, &v)
}

// AddClient registers a point-to-site client on the gateway.
func (c *Client) AddClient(ctx context.Context, req api.AddClientRequest) (api.AddedClient, error) {
	var v api.AddedClient
	return v, c.do(ctx, "POST", "/v1/clients", req, &v)
}

// Clients lists the gateway's point-to-site clients.
func (c *Client) Clients(ctx context.Context) ([]api.ClientInfo, error) {
	var v []api.ClientInfo
	return v, c.do(ctx, "GET", "/v1/clients", nil, &v)
}

// RevokeClient removes a point-to-site client.
func (c *Client) RevokeClient(ctx context.Context, name string) (api.ClientInfo, error) {
	if name == "" {
		return api.ClientInfo{}, api.WithCode(api.CodeBadRequest, errors.New("client name required"))
	}
	var v api.ClientInfo
	return v, c.do(ctx, "DELETE", "/v1/clients/"+url.PathEscape(name), nil, &v)
}

// Invite creates a one-time invite token for a new client.
func (c *Client) Invite(ctx context.Context, req api.InviteRequest) (api.Invite, error) {
	var v api.Invite
	return v, c.do(ctx, "POST", "/v1/invites", req, &v)
}

// Invites lists the gateway's invites (pending and recently spent).
func (c *Client) Invites(ctx context.Context) ([]api.InviteInfo, error) {
	var v []api.InviteInfo
	return v, c.do(ctx, "GET", "/v1/invites", nil, &v)
}

// RevokeInvite spends a pending invite so that its token is refused.
func (c *Client) RevokeInvite(ctx context.Context, name string) (api.InviteInfo, error) {
	if name == "" {
		return api.InviteInfo{}, api.WithCode(api.CodeBadRequest, errors.New("invite name required"))
	}
	var v api.InviteInfo
	return v, c.do(ctx, "DELETE", "/v1/invites/"+url.PathEscape(name), nil, &v)
}

// do sends a request (in, if not nil, as its JSON body) and decodes a JSON
// answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vgate"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.Socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		return c.answerError(resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control socket %s: bad answer: %w", c.Socket, err)
	}
	return nil
}

// answerError is the error of a non-200 answer: the gateway's message
// with its code, or the HTTP status when the body is not an api.Error.
func (c *Client) answerError(resp *http.Response, body []byte) error {
	var e api.Error
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return fmt.Errorf("control socket %s: %s", c.Socket, resp.Status)
	}
	err := errors.New(e.Error)
	if e.Code != "" {
		return api.WithCode(e.Code, err)
	}
	return err
}
