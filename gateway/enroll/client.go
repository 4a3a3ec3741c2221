package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
)

// PinError: the listener's certificate is not the one the token pins;
// nothing was sent.
type PinError struct {
	URL       string
	Got, Want [32]byte
}

func (e *PinError) Error() string {
	return fmt.Sprintf("%s presented a certificate with pin %s, but the invite pins %s: refusing to send anything (a different gateway, or someone in between); ask for a new invite",
		e.URL, PinString(e.Got), PinString(e.Want))
}

// Enroll sends pub and the token's secret to the token's URL, over TLS to
// the pinned certificate only, and returns the enrolled client. A refusal
// by the gateway is a *Refused; a pin mismatch a *PinError.
func Enroll(ctx context.Context, tok Token, pub keys.PublicKey) (Response, error) {
	pinErr := error(nil)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS13,
			// The certificate is self-signed: the pin replaces the chain
			// and name checks (VerifyConnection runs in every handshake).
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					pinErr = &PinError{URL: tok.URL, Want: tok.Pin}
					return pinErr
				}
				if got := sha256.Sum256(cs.PeerCertificates[0].Raw); got != tok.Pin {
					pinErr = &PinError{URL: tok.URL, Got: got, Want: tok.Pin}
					return pinErr
				}
				return nil
			},
		},
		Proxy:               nil,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	body, _ := json.Marshal(Request{Secret: base64.StdEncoding.EncodeToString(tok.Secret[:]), PublicKey: pub.String()})
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(tok.URL, "/")+Path, bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if pinErr != nil {
			return Response{}, pinErr
		}
		return Response{}, fmt.Errorf("enroll at %s: %w", tok.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Response{}, fmt.Errorf("enroll at %s: %w", tok.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e answerError
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			return Response{}, fmt.Errorf("enroll at %s: %s", tok.URL, resp.Status)
		}
		return Response{}, &Refused{Code: e.Code, Msg: e.Error}
	}
	var out Response
	if err := json.Unmarshal(b, &out); err != nil || out.Config == "" {
		return Response{}, fmt.Errorf("enroll at %s: bad answer: %v", tok.URL, err)
	}
	return out, nil
}

// WithPrivateKey returns a config the gateway made without a private key
// (a "# PrivateKey = ..." placeholder in [Interface]) with priv in it.
func WithPrivateKey(config string, priv keys.PrivateKey) (string, error) {
	lines := strings.SplitAfter(config, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == "[Interface]" {
			out := strings.Join(lines[:i+1], "") + "PrivateKey = " + priv.Base64() + "\n"
			for _, r := range lines[i+1:] {
				if !strings.HasPrefix(strings.TrimSpace(r), "# PrivateKey") {
					out += r
				}
			}
			return out, nil
		}
	}
	return "", errors.New("the gateway's config has no [Interface] section")
}
