package ipsec

import "testing"

// Alerts log by name; an unknown code still says its number.
func TestAlertString(t *testing.T) {
	for a, want := range map[Alert]string{
		AlertRetransmitTimeout:   "retransmit_send_timeout",
		AlertPeerAuthFailed:      "peer_auth_failed",
		AlertProposalMismatchIKE: "proposal_mismatch_ike",
		AlertRetransmitSend:      "retransmit_send",
		99:                       "alert_99",
	} {
		if got := a.String(); got != want {
			t.Errorf("Alert(%d) = %q, want %q", int(a), got, want)
		}
	}
}
