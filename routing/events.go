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

// DownCode says why a session is (or last went) down. Callers compare it
// with ==; the human text is in NeighborStatus.Down and LastDown.
type DownCode string

const (
	// DownNone: the session is established, or has never been up and no
	// reason is known yet.
	DownNone DownCode = ""
	// DownMaxPrefix: the neighbor sent more prefixes than its limit; the
	// session is held down until the limit changes.
	DownMaxPrefix DownCode = "max_prefix"
	// DownProbe: vgate holds the session down because its tunnel does not
	// answer (SetDown with HoldProbe).
	DownProbe DownCode = "probe"
	// DownBFD: vgate holds the session down because its BFD session went
	// down (SetDown with HoldBFD; the text carries the diagnostic).
	DownBFD DownCode = "bfd_down"
	// DownAdmin: held down administratively for another reason.
	DownAdmin DownCode = "admin"
	// DownNotificationReceived: the neighbor closed the session with a
	// NOTIFICATION (see NeighborStatus.Notification).
	DownNotificationReceived DownCode = "notification_received"
	// DownNotificationSent: this speaker closed the session with a
	// NOTIFICATION, e.g. on a malformed UPDATE or a bad peer AS.
	DownNotificationSent DownCode = "notification_sent"
	// DownHoldTimerExpired: nothing heard from the neighbor for the hold
	// time.
	DownHoldTimerExpired DownCode = "hold_timer_expired"
	// DownConnectionLost: the TCP connection failed (read or write error,
	// or the neighbor closed it without a NOTIFICATION).
	DownConnectionLost DownCode = "connection_lost"
	// DownOther: a reason GoBGP reports that none of the above covers.
	DownOther DownCode = "other"
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
func sessionState(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE:
		return "idle"
	case api.PeerState_SESSION_STATE_CONNECT:
		return "connect"
	case api.PeerState_SESSION_STATE_ACTIVE:
		return "active"
	case api.PeerState_SESSION_STATE_OPENSENT:
		return "opensent"
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return "openconfirm"
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return "established"
	}
	return "idle"
}

func maxPrefixText(limit int) string {
	return fmt.Sprintf("max-prefix: more than %d prefixes received", limit)
}
