package control

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"

	"github.com/vgate-project/vgate/gateway/p2s"
)

// ClientAPI is the point-to-site part of the control API. Handler serves
// it when the API implements it:
//
//	POST   /v1/clients         p2s.AddRequest -> p2s.Added
//	GET    /v1/clients         -> []p2s.ClientInfo
//	DELETE /v1/clients/{name}  -> p2s.ClientInfo (the revoked client)
type ClientAPI interface {
	AddClient(p2s.AddRequest) (p2s.Added, error)
	Clients() ([]p2s.ClientInfo, error)
	RevokeClient(name string) (p2s.ClientInfo, error)
}

func handleClients(m *http.ServeMux, api API) {
	ca, ok := api.(ClientAPI)
	if !ok {
		return
	}
	m.HandleFunc("POST /v1/clients", func(w http.ResponseWriter, r *http.Request) {
		var req p2s.AddRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: "bad request: " + err.Error()})
			return
		}
		added, err := ca.AddClient(req)
		if err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, Error{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, added)
	})
	m.HandleFunc("GET /v1/clients", func(w http.ResponseWriter, r *http.Request) {
		list, err := ca.Clients()
		if err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, Error{Error: err.Error()})
			return
		}
		if list == nil {
			list = []p2s.ClientInfo{}
		}
		writeJSON(w, http.StatusOK, list)
	})
	m.HandleFunc("DELETE /v1/clients/{name}", func(w http.ResponseWriter, r *http.Request) {
		c, err := ca.RevokeClient(r.PathValue("name"))
		if err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, Error{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, c)
	})
}

// AddClient registers a point-to-site client on the gateway.
func (c *Client) AddClient(req p2s.AddRequest) (p2s.Added, error) {
	var out p2s.Added
	err := c.DoJSON("POST", "/v1/clients", req, &out)
	return out, err
}

// Clients lists the gateway's point-to-site clients.
func (c *Client) Clients() ([]p2s.ClientInfo, error) {
	var out []p2s.ClientInfo
	err := c.Do("GET", "/v1/clients", &out)
	return out, err
}

// RevokeClient removes a point-to-site client.
func (c *Client) RevokeClient(name string) (p2s.ClientInfo, error) {
	if name == "" {
		return p2s.ClientInfo{}, errors.New("client name required")
	}
	var out p2s.ClientInfo
	err := c.Do("DELETE", "/v1/clients/"+url.PathEscape(name), &out)
	return out, err
}
