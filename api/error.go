package api

import "errors"

// Error is the JSON body of a failed request.
type Error struct {
	Error string    `json:"error"`
	Code  ErrorCode `json:"code,omitempty"` // "" when the gateway knows no code
}

// ErrorCode classifies a failed request for programs: the CLI decides by
// code (errors.Is(err, api.CodeNoP2S)), never by the message text. An
// ErrorCode is itself an error so that errors.Is finds it in a chain.
type ErrorCode string

const (
	CodeBadRequest   ErrorCode = "bad_request"   // the request could not be decoded or is malformed
	CodeForbidden    ErrorCode = "forbidden"     // the caller is neither root nor the socket's owner
	CodeNotFound     ErrorCode = "not_found"     // it names a peering or client that does not exist
	CodeConflict     ErrorCode = "conflict"      // it clashes with what exists (a client name or key, a running capture)
	CodeNoP2S        ErrorCode = "no_p2s"        // point_to_site is not configured on this gateway
	CodeStopped      ErrorCode = "stopped"       // the gateway is shutting down
	CodeReloadFailed ErrorCode = "reload_failed" // the new config was refused or could not be applied; the previous one runs
	CodeNoEnroll     ErrorCode = "no_enroll"     // point_to_site.enroll is not configured: no invites
)

// ErrorCodes lists every error code, in a fixed order.
var ErrorCodes = []ErrorCode{CodeBadRequest, CodeForbidden, CodeNotFound, CodeConflict, CodeNoP2S, CodeStopped, CodeReloadFailed, CodeNoEnroll}

func (c ErrorCode) Error() string { return string(c) }

// CodeError is an error with a code: what the gateway returns where it
// knows one, and what the control client returns for a failed request.
// errors.Is(err, code) matches its code; its message is Err's.
type CodeError struct {
	Code ErrorCode
	Err  error
}

// WithCode attaches code to err (nil stays nil).
func WithCode(code ErrorCode, err error) error {
	if err == nil {
		return nil
	}
	return &CodeError{Code: code, Err: err}
}

func (e *CodeError) Error() string   { return e.Err.Error() }
func (e *CodeError) Unwrap() []error { return []error{e.Err, e.Code} }

// CodeOf is the first code in err's chain, or "".
func CodeOf(err error) ErrorCode {
	var c ErrorCode
	if errors.As(err, &c) {
		return c
	}
	return ""
}
