package routing

import (
	"fmt"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	vapi "github.com/vgate-project/vgate/api"
)

// DownCode says why a session is (or last went) down: the control API's
// type.
type DownCode = vapi.SessionDownCode

// The down codes, as the control API spells them.
const (
	DownNone                 = vapi.SessionDownNone
	DownMaxPrefix            = vapi.SessionDownMaxPrefix
	DownProbe                = vapi.SessionDownProbe // SetDown with HoldProbe
	DownBFD                  = vapi.SessionDownBFD   // SetDown with HoldBFD
	DownAdmin                = vapi.SessionDownAdmin
	DownNotificationReceived = vapi.SessionDownNotificationReceived
	DownNotificationSent     = vapi.SessionDownNotificationSent
	DownHoldTimerExpired     = vapi.SessionDownHoldTimerExpired
	DownConnectionLost       = vapi.SessionDownConnectionLost
	DownOther                = vapi.SessionDownOther
)

// Notification is a BGP NOTIFICATION that ended a session: the control
// API's type. Direction is NotificationSent or NotificationReceived; Code
// and Subcode are the RFC 4271 error code and subcode, zero when GoBGP did
// not report them.
type Notification = vapi.Notification

// Notification directions.
const (
	NotificationSent     = "sent"
	NotificationReceived = "received"
)

// downInfo is what the peer events told about one session's last down.
type downInfo struct {
	code  DownCode
	text  string
	at    time.Time
	notif *Notification
	// pfxLimit: GoBGP's admin state is "prefix limit reached" (it keeps
	// the session idle until enabled again).
	pfxLimit bool
}

// notificationCodes maps GoBGP's rendering of an error code and subcode
// back to the numbers. GoBGP's peer event reports the NOTIFICATION that
// ended a session only as DisconnectMessage, rendered by
// bgp.NotificationErrorCode.String ("code 3(update) subcode 11(...)");
// the table holds every value of that function for the RFC 4271 and RFC
// 7313 codes, so a lookup is exact. It only fills display fields; no
// decision depends on it.
var notificationCodes = sync.OnceValue(func() map[string][2]uint8 {
	m := map[string][2]uint8{}
	for c := 1; c <= 7; c++ {
		for s := 0; s <= 255; s++ {
			m[bgp.NewNotificationErrorCode(uint8(c), uint8(s)).String()] = [2]uint8{uint8(c), uint8(s)}
		}
	}
	return m
})

// GoBGP's DisconnectMessage for a NOTIFICATION is one of these prefixes
// followed by the rendered code (fsmStateReason.String).
const (
	notifSentPrefix = "notification-sent "
	notifRecvPrefix = "notification-received "
)

func notificationFrom(dir, msg string, at time.Time) *Notification {
	n := &Notification{Direction: dir, Text: msg, At: at}
	prefix := notifSentPrefix
	if dir == NotificationReceived {
		prefix = notifRecvPrefix
	}
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		n.Text = msg[len(prefix):]
		if cs, ok := notificationCodes()[n.Text]; ok {
			n.Code, n.Subcode = cs[0], cs[1]
		}
	}
	return n
}

// downFromEvent classifies a peer event that took a session to idle.
// holdCode and holdText are the code and text of vgate's own hold on the
// session (DownNone and "" if none). ok is false for events that are not a session going down.
func downFromEvent(st apiutil.PeerState, holdCode DownCode, holdText string, at time.Time) (downInfo, bool) {
	d := downInfo{at: at, text: st.DisconnectMessage, pfxLimit: st.AdminState == api.PeerState_ADMIN_STATE_PFX_CT}
	if st.SessionState != bgp.BGP_FSM_IDLE {
		return d, false
	}
	if d.pfxLimit {
		// GoBGP tore the session down on the prefix limit; whatever the
		// TCP side saw (the NOTIFICATION it sent, a read error) is a
		// consequence.
		d.code = DownMaxPrefix
		return d, true
	}
	switch st.DisconnectReason {
	case api.PeerState_DISCONNECT_REASON_UNSPECIFIED,
		api.PeerState_DISCONNECT_REASON_IDLE_TIMER_EXPIRED,
		api.PeerState_DISCONNECT_REASON_DECONFIGURED:
		return d, false
	case api.PeerState_DISCONNECT_REASON_ADMIN_DOWN:
		// vgate disabled the peer itself (SetDown): its reason, never
		// GoBGP's "admin-down", which reads as if someone shut it.
		d.code = holdCode
		if d.code == DownNone {
			d.code = DownAdmin
		}
		d.text = "held down by vgate"
		if holdText != "" {
			d.text += ": " + holdText
		}
	case api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED:
		d.code = DownHoldTimerExpired
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT:
		d.code = DownNotificationSent
		d.notif = notificationFrom(NotificationSent, st.DisconnectMessage, at)
	case api.PeerState_DISCONNECT_REASON_BAD_PEER_AS:
		// The OPEN carried another AS than configured; GoBGP answered
		// with an OPEN error NOTIFICATION, subcode bad peer AS.
		d.code = DownNotificationSent
		d.notif = &Notification{Direction: NotificationSent, Code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR,
			Subcode: bgp.BGP_ERROR_SUB_BAD_PEER_AS, At: at,
			Text: bgp.NewNotificationErrorCode(bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_BAD_PEER_AS).String()}
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED:
		d.code = DownNotificationReceived
		d.notif = notificationFrom(NotificationReceived, st.DisconnectMessage, at)
	case api.PeerState_DISCONNECT_REASON_READ_FAILED, api.PeerState_DISCONNECT_REASON_WRITE_FAILED:
		d.code = DownConnectionLost
	default:
		d.code = DownOther
	}
	return d, true
}

// holdCode is the DownCode of vgate's holds on a session: max-prefix wins
// (the gateway reports it as its own reason), then the probe, then BFD.
func holdCode(h map[string]string) DownCode {
	switch {
	case len(h) == 0:
		return DownNone
	case h[holdMaxPrefix] != "":
		return DownMaxPrefix
	case h[HoldProbe] != "":
		return DownProbe
	case h[HoldBFD] != "":
		return DownBFD
	}
	return DownAdmin
}

// sessionState renders GoBGP's session state the way NeighborStatus.State
// has always shown it.
func sessionState(s api.PeerState_SessionState) vapi.SessionState {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE:
		return vapi.SessionIdle
	case api.PeerState_SESSION_STATE_CONNECT:
		return vapi.SessionConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return vapi.SessionActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return vapi.SessionOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return vapi.SessionOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return vapi.SessionEstablished
	}
	return vapi.SessionIdle
}

func maxPrefixText(limit int) string {
	return fmt.Sprintf("max-prefix: more than %d prefixes received", limit)
}
