package api

import (
	"encoding/json"
	"net/netip"
	"testing"
)

// A route rejection reads, in text and JSON, as the human reason.
func TestRouteRejectionText(t *testing.T) {
	mp := netip.MustParsePrefix
	for _, c := range []struct {
		r    RouteRejection
		want string
	}{
		{RouteRejection{}, ""},
		{RouteRejection{Code: RejectProtected, Owner: "local address space", Conflict: mp("10.1.0.0/16")}, "overlaps local address space 10.1.0.0/16"},
		{RouteRejection{Code: RejectProtected, Owner: "tunnel address", Conflict: mp("10.255.0.1/32"), Seen: mp("100.65.4.0/24")},
			"seen as 100.65.4.0/24, overlaps tunnel address 10.255.0.1/32"},
		{RouteRejection{Code: RejectOutsideAddressSpaces}, "outside the peering's address_spaces"},
		{RouteRejection{Code: RejectNATInternal, Conflict: mp("10.1.0.0/16")}, "contains nat.ingress internal 10.1.0.0/16; not translatable as one route"},
		{RouteRejection{Code: RejectNATExternal, Conflict: mp("100.65.0.0/16")},
			"overlaps nat.ingress external 100.65.0.0/16, where this side sees translated addresses of the peer"},
		{RouteRejection{Code: RejectPeeringNATExternal, Owner: "a", Conflict: mp("100.65.0.0/16")}, "overlaps peering a's nat.ingress external 100.65.0.0/16"},
	} {
		if got := c.r.String(); got != c.want {
			t.Errorf("%+v: String %q, want %q", c.r, got, c.want)
		}
		b, err := json.Marshal(struct {
			R RouteRejection `json:"reason,omitzero"`
		}{c.r})
		want, _ := json.Marshal(struct {
			R string `json:"reason,omitempty"`
		}{c.want})
		if err != nil || string(b) != string(want) {
			t.Errorf("%+v: JSON %s (%v), want %s", c.r, b, err, want)
		}
	}
}
