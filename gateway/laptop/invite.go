package laptop

import (
	"context"
	"fmt"

	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/keys"
)

// InviteTokenPrefix starts every invite token (`vgate connect --invite -`
// finds the token in its input by it).
const InviteTokenPrefix = enroll.TokenPrefix

// Enrolled is a laptop enrolled with an invite: its client name and its
// full wg-quick config (with the private key made here).
type Enrolled struct {
	Name   string
	Config string
	URL    string
}

// EnrollInvite enrolls this laptop with an invite token (`vgate connect
// --invite`): it makes a key pair here, sends only the public key and
// the token's secret to the token's URL over TLS pinned to the token's
// certificate, and returns the config the gateway answered with the
// private key added. The error says why the token was refused (a
// *enroll.Refused with its code, a *enroll.PinError, or a damaged token);
// it never holds the secret or the private key.
func EnrollInvite(ctx context.Context, token string) (Enrolled, error) {
	tok, err := enroll.ParseToken(token)
	if err != nil {
		return Enrolled{}, err
	}
	priv, err := keys.GeneratePrivate()
	if err != nil {
		return Enrolled{}, err
	}
	resp, err := enroll.Enroll(ctx, tok, priv.Public())
	if err != nil {
		return Enrolled{}, err
	}
	conf, err := enroll.WithPrivateKey(resp.Config, priv)
	if err != nil {
		return Enrolled{}, fmt.Errorf("enrolled as %q, but %w", resp.Name, err)
	}
	return Enrolled{Name: resp.Name, Config: conf, URL: tok.URL}, nil
}
