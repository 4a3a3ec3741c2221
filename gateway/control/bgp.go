package control

import "net/http"

// RoutingAPI is the routing part of the control API. Handler serves it
// when the API implements it:
//
//	GET /v1/bgp     -> the speaker's sessions and tunnel probes
//	GET /v1/routes  -> effective routes (local, static, bgp)
type RoutingAPI interface {
	BGP() (any, error)
	Routes() (any, error)
}

func handleRouting(m *http.ServeMux, api API) {
	ra, ok := api.(RoutingAPI)
	if !ok {
		return
	}
	serve := func(f func() (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v, err := f()
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, Error{Error: err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, v)
		}
	}
	m.HandleFunc("GET /v1/bgp", serve(ra.BGP))
	m.HandleFunc("GET /v1/routes", serve(ra.Routes))
}
