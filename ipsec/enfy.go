package ipsec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
)

// Alert is one of charon's typed alerts, as its error-notify plugin
// reports them (the plugin's ERROR_NOTIFY_* codes).
type Alert int

// The alerts Decide uses; others are kept but not mapped to a reason.
const (
	AlertLocalAuthFailed      Alert = 2 // the peer refused our authentication
	AlertPeerAuthFailed       Alert = 3 // we refused the peer's
	AlertRetransmitTimeout    Alert = 6 // an exchange went unanswered (DPD or initiation)
	AlertHalfOpenTimeout      Alert = 7
	AlertProposalMismatchIKE  Alert = 8
	AlertProposalMismatchChld Alert = 9
	AlertTSMismatch           Alert = 10
	AlertInstallChildFailed   Alert = 11
	AlertInstallPolicyFailed  Alert = 12 // e.g. kernel-libipsec found no local address in a selector
	AlertAuthorizationFailed  Alert = 16
	AlertRetransmitSend       Alert = 20 // one retransmission (informational)
)

// alertNames are charon's names of its error-notify codes (the plugin's
// ERROR_NOTIFY_* constants, lower case), for the log.
var alertNames = map[Alert]string{
	1:                         "radius_not_responding",
	AlertLocalAuthFailed:      "local_auth_failed",
	AlertPeerAuthFailed:       "peer_auth_failed",
	4:                         "parse_error_header",
	5:                         "parse_error_body",
	AlertRetransmitTimeout:    "retransmit_send_timeout",
	AlertHalfOpenTimeout:      "half_open_timeout",
	AlertProposalMismatchIKE:  "proposal_mismatch_ike",
	AlertProposalMismatchChld: "proposal_mismatch_child",
	AlertTSMismatch:           "ts_mismatch",
	AlertInstallChildFailed:   "install_child_sa_failed",
	AlertInstallPolicyFailed:  "install_child_policy_failed",
	13:                        "unique_replace",
	14:                        "unique_keep",
	15:                        "vip_failure",
	AlertAuthorizationFailed:  "authorization_failed",
	17:                        "cert_expired",
	18:                        "cert_revoked",
	19:                        "no_issuer_cert",
	AlertRetransmitSend:       "retransmit_send",
	21:                        "retransmit_send_cleared",
	22:                        "retransmit_receive",
}

// String is the alert's name ("retransmit_send_timeout"), or "alert_N"
// for a code this version does not know.
func (a Alert) String() string {
	if n, ok := alertNames[a]; ok {
		return n
	}
	return "alert_" + strconv.Itoa(int(a))
}

// notifyMsgLen is the size of error-notify's message (strongSwan 5.9's
// error_notify_msg_t, checked against Debian 12's charon): a 32-bit type in
// network byte order, then NUL-terminated strings of 384 (description),
// 64 (connection name), 256 (peer identity) and 60 bytes (peer address).
const notifyMsgLen = 4 + 384 + 64 + 256 + 60

// notifyMsg is one decoded error-notify message. Str is charon's text,
// for the log only (decisions use Type).
type notifyMsg struct {
	Type Alert
	Str  string
	Name string // the connection (peering) name
	ID   string
	IP   string
}

var errNotifyLen = errors.New("error-notify message of the wrong size")

// parseNotify decodes one error-notify message.
func parseNotify(b []byte) (notifyMsg, error) {
	if len(b) != notifyMsgLen {
		return notifyMsg{}, errNotifyLen
	}
	cstr := func(f []byte) string {
		if i := bytes.IndexByte(f, 0); i >= 0 {
			f = f[:i]
		}
		return string(bytes.ToValidUTF8(f, []byte("?")))
	}
	return notifyMsg{
		Type: Alert(int32(binary.BigEndian.Uint32(b[:4]))),
		Str:  cstr(b[4:388]),
		Name: cstr(b[388:452]),
		ID:   cstr(b[452:708]),
		IP:   cstr(b[708:768]),
	}, nil
}
