package api

import "time"

// InviteRequest asks for a one-time invite token for a new client.
type InviteRequest struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	// Expires is how long the invite is valid; 0: the default (24h).
	Expires time.Duration `json:"expires,omitempty"`
}

// Invite is a created invite. Token holds the one-time secret: show it to
// whoever asked, never log it.
type Invite struct {
	Name    string    `json:"name"`
	Groups  []string  `json:"groups"`
	Token   string    `json:"token"`
	URL     string    `json:"url"`
	Pin     string    `json:"pin"` // sha256:<hex> of the enrollment certificate
	Expires time.Time `json:"expires"`
}

// InviteInfo is an invite as `vgate client list` shows it (no secret).
type InviteInfo struct {
	Name    string    `json:"name"`
	Groups  []string  `json:"groups"`
	State   string    `json:"state"` // pending, used, expired, revoked
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Used    time.Time `json:"used,omitzero"`
	Revoked time.Time `json:"revoked,omitzero"`
}
