// Package control owns the gateway's control socket: HTTP+JSON on a unix
// socket that only root (or the socket's owner) may use, the server side
// that routes requests to a running gateway (Gateway, Handler, Listen) and
// the client side the CLI uses (Client). It speaks only the types of
// package api.
package control

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/vgate-project/vgate/api"
)

// Gateway is what the control socket serves:
//
//	GET    /v1/status          -> api.Status
//	POST   /v1/reload          -> {"result": "reloaded"}
//	GET    /v1/bgp             -> api.BGPStatus
//	GET    /v1/routes          -> api.RoutesView
//	POST   /v1/clients         api.AddClientRequest -> api.AddedClient
//	GET    /v1/clients         -> []api.ClientInfo
//	DELETE /v1/clients/{name}  -> api.ClientInfo (the revoked client)
//	GET    /v1/capture?…       -> a pcap stream, api.CaptureSummary in a trailer
//	POST   /v1/invites         api.InviteRequest -> api.Invite
//	GET    /v1/invites         -> []api.InviteInfo
//	DELETE /v1/invites/{name}  -> api.InviteInfo (the revoked invite)
//	POST   /v1/drain           api.DrainRequest -> api.DrainStatus
//
// A failed request answers api.Error with the code of the error
// (api.CodeOf) when it has one.
type Gateway interface {
	Status(ctx context.Context) (api.Status, error)
	// Reload re-reads the config the gateway runs and applies it.
	Reload(ctx context.Context) error
	BGP(ctx context.Context) (api.BGPStatus, error)
	Routes(ctx context.Context) (api.RoutesView, error)
	AddClient(ctx context.Context, req api.AddClientRequest) (api.AddedClient, error)
	Clients(ctx context.Context) ([]api.ClientInfo, error)
	RevokeClient(ctx context.Context, name string) (api.ClientInfo, error)
	Invite(ctx context.Context, req api.InviteRequest) (api.Invite, error)
	Invites(ctx context.Context) ([]api.InviteInfo, error)
	RevokeInvite(ctx context.Context, name string) (api.InviteInfo, error)
	// Capture writes a pcap file to w until a limit of q or ctx ends. It
	// must not write anything when it fails to start, so that the error
	// can still be sent as JSON.
	Capture(ctx context.Context, q api.CaptureQuery, w io.Writer) (api.CaptureSummary, error)
	// Drain starts or ends a drain (vgate drain [--undo]).
	Drain(ctx context.Context, req api.DrainRequest) (api.DrainStatus, error)
}

// Handler routes control requests to gw.
func Handler(gw Gateway) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/status", get(gw.Status))
	m.HandleFunc("GET /v1/bgp", get(gw.BGP))
	m.HandleFunc("GET /v1/routes", get(gw.Routes))
	m.HandleFunc("GET /v1/clients", get(func(ctx context.Context) ([]api.ClientInfo, error) {
		list, err := gw.Clients(ctx)
		if list == nil {
			list = []api.ClientInfo{}
		}
		return list, err
	}))
	m.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := gw.Reload(r.Context()); err != nil {
			writeError(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, reloaded{"reloaded"})
	})
	m.HandleFunc("POST /v1/clients", func(w http.ResponseWriter, r *http.Request) {
		var req api.AddClientRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: "bad request: " + err.Error(), Code: api.CodeBadRequest})
			return
		}
		added, err := gw.AddClient(r.Context(), req)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, added)
	})
	m.HandleFunc("DELETE /v1/clients/{name}", func(w http.ResponseWriter, r *http.Request) {
		c, err := gw.RevokeClient(r.Context(), r.PathValue("name"))
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	})
	m.HandleFunc("GET /v1/invites", get(func(ctx context.Context) ([]api.InviteInfo, error) {
		list, err := gw.Invites(ctx)
		if list == nil {
			list = []api.InviteInfo{}
		}
		return list, err
	}))
	m.HandleFunc("POST /v1/invites", func(w http.ResponseWriter, r *http.Request) {
		var req api.InviteRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: "bad request: " + err.Error(), Code: api.CodeBadRequest})
			return
		}
		inv, err := gw.Invite(r.Context(), req)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, inv)
	})
	m.HandleFunc("DELETE /v1/invites/{name}", func(w http.ResponseWriter, r *http.Request) {
		inv, err := gw.RevokeInvite(r.Context(), r.PathValue("name"))
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, inv)
	})
	m.HandleFunc("POST /v1/drain", func(w http.ResponseWriter, r *http.Request) {
		var req api.DrainRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: "bad request: " + err.Error(), Code: api.CodeBadRequest})
			return
		}
		st, err := gw.Drain(r.Context(), req)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	m.HandleFunc("GET /v1/capture", func(w http.ResponseWriter, r *http.Request) {
		serveCapture(w, r, gw) // capture.go
	})
	return m
}

// reloaded is the answer to a successful reload.
type reloaded struct {
	Result string `json:"result"`
}

// get serves a read-only GET from f.
func get[T any](f func(context.Context) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// statusOf is the HTTP status of an error code; def when it has none.
func statusOf(code api.ErrorCode, def int) int {
	switch code {
	case api.CodeBadRequest:
		return http.StatusBadRequest
	case api.CodeForbidden:
		return http.StatusForbidden
	case api.CodeNotFound, api.CodeNoP2S, api.CodeNoEnroll:
		return http.StatusNotFound
	case api.CodeConflict:
		return http.StatusConflict
	case api.CodeStopped:
		return http.StatusServiceUnavailable
	case api.CodeReloadFailed:
		return http.StatusUnprocessableEntity
	}
	return def
}

// writeError answers err as api.Error, with its code if it has one.
func writeError(w http.ResponseWriter, def int, err error) {
	code := api.CodeOf(err)
	writeJSON(w, statusOf(code, def), api.Error{Error: err.Error(), Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
