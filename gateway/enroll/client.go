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
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/vgate-project/vgate/gateway/keys"
)

// Bounds of the laptop's side of an enrollment: the enrollment server is
// as hostile as anything else on the network (a phished token pins the
// attacker's certificate), so its answer is read with bounds on size and
// time, and a redirect is never followed.
const (
	// MaxAnswer is the largest answer body read; MaxConfig the largest
	// config in it.
	MaxAnswer = 64 << 10
	MaxConfig = 16 << 10
	// maxAnswerHeader bounds the answer's header.
	maxAnswerHeader = 16 << 10
	// EnrollTimeout bounds the whole exchange (dial, TLS, request,
	// answer); the TLS handshake and the answer's header each get
	// enrollStepTimeout.
	EnrollTimeout     = 20 * time.Second
	enrollStepTimeout = 10 * time.Second
	// maxRefusal is the most of a refusal's text shown.
	maxRefusal = 300
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

// ErrRedirect: the enrollment server answered with a redirect, which the
// laptop does not follow (the secret goes to the token's URL only).
var ErrRedirect = errors.New("the enrollment server answered with a redirect; refusing to follow it (the invite's secret goes to the invite's URL only)")

// Enroll sends pub and the token's secret to the token's URL, over TLS to
// the pinned certificate only, and returns the answer (ParseResponse: its
// sizes checked, its content not yet: that is the caller's). A refusal by
// the gateway is a *Refused; a pin mismatch a *PinError.
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
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: enrollStepTimeout}).DialContext,
		TLSHandshakeTimeout:    enrollStepTimeout,
		ResponseHeaderTimeout:  enrollStepTimeout,
		MaxResponseHeaderBytes: maxAnswerHeader,
		DisableKeepAlives:      true,
		DisableCompression:     true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport:     tr,
		Timeout:       EnrollTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return ErrRedirect },
	}
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
		if errors.Is(err, ErrRedirect) {
			return Response{}, fmt.Errorf("enroll at %s: %w", tok.URL, ErrRedirect)
		}
		return Response{}, fmt.Errorf("enroll at %s: %w", tok.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return Response{}, fmt.Errorf("enroll at %s: reading the answer (at most %d bytes, all within %v): %w", tok.URL, MaxAnswer, EnrollTimeout, err)
	}
	if len(b) > MaxAnswer {
		return Response{}, fmt.Errorf("enroll at %s: the answer is larger than %d bytes; refused", tok.URL, MaxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		var e answerError
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			return Response{}, fmt.Errorf("enroll at %s: %s", tok.URL, Printable(resp.Status, 64))
		}
		return Response{}, &Refused{Code: Code(Printable(string(e.Code), 32)), Msg: Printable(e.Error, maxRefusal)}
	}
	out, err := ParseResponse(b)
	if err != nil {
		return Response{}, fmt.Errorf("enroll at %s: %w", tok.URL, err)
	}
	return out, nil
}

// ParseResponse decodes an enrollment answer: JSON with a name and a
// config of at most MaxConfig bytes. It checks sizes only; what the
// config says is checked by the laptop against the token's bound.
func ParseResponse(b []byte) (Response, error) {
	var out Response
	if len(b) > MaxAnswer {
		return Response{}, fmt.Errorf("bad answer: larger than %d bytes", MaxAnswer)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return Response{}, errors.New("bad answer: not the JSON of an enrolled client")
	}
	switch {
	case out.Name == "":
		return Response{}, errors.New("bad answer: no client name")
	case out.Config == "":
		return Response{}, errors.New("bad answer: no config")
	case len(out.Config) > MaxConfig:
		return Response{}, fmt.Errorf("bad answer: config of %d bytes, at most %d", len(out.Config), MaxConfig)
	}
	return out, nil
}

// Printable is s for a terminal or a log: at most max bytes, every
// character that is not printable (escape sequences, control characters,
// invalid UTF-8) replaced by '?'. Text a server sent goes through it
// before it is shown.
func Printable(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) && r != ' ' {
			return '?'
		}
		return r
	}, s)
}
