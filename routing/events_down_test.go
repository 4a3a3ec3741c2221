package routing

import (
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// A session vgate disabled itself reads as vgate's hold with its reason,
// never with GoBGP's "admin-down"; other causes keep their codes.
func TestDownFromEventWording(t *testing.T) {
	at := time.Now()
	idle := func(r api.PeerState_DisconnectReason, msg string) apiutil.PeerState {
		return apiutil.PeerState{SessionState: bgp.BGP_FSM_IDLE, DisconnectReason: r, DisconnectMessage: msg}
	}
	cases := []struct {
		name     string
		st       apiutil.PeerState
		holdCode DownCode
		holdText string
		code     DownCode
		text     string
	}{
		{"probe hold", idle(api.PeerState_DISCONNECT_REASON_ADMIN_DOWN, "admin-down"), DownProbe, "tunnel probe: no reply for 8s",
			DownProbe, "held down by vgate: tunnel probe: no reply for 8s"},
		{"hold already released", idle(api.PeerState_DISCONNECT_REASON_ADMIN_DOWN, "admin-down"), DownNone, "",
			DownAdmin, "held down by vgate"},
		{"hold timer", idle(api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED, "hold timer expired"), DownNone, "",
			DownHoldTimerExpired, "hold timer expired"},
	}
	for _, c := range cases {
		d, down := downFromEvent(c.st, c.holdCode, c.holdText, at)
		if !down || d.code != c.code || d.text != c.text {
			t.Errorf("%s: down %v, code %q, text %q; want %q, %q", c.name, down, d.code, d.text, c.code, c.text)
		}
		if strings.Contains(d.text, "admin-down") {
			t.Errorf("%s: GoBGP's wording in %q", c.name, d.text)
		}
	}
}
