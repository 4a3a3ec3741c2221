package ipsec

import "github.com/vgate-project/vgate/api"

// Observation is what vgate knows of one IPsec peering at one moment.
type Observation struct {
	// Running: vgate's charon runs and answers on VICI.
	Running bool
	// IKE and Child are charon's states of the peering's IKE SA and child
	// SA ("ESTABLISHED", "CONNECTING", "INSTALLED", ...), "" when none.
	IKE, Child string
	// Alert is the last typed alert for the peering since it was last up
	// (0: none).
	Alert Alert
	// WasUp: the peering has been up since its config was loaded.
	WasUp bool
}

// Decide is the down reason of an IPsec peering, "" when it is up (an
// established IKE SA with an installed child SA). A failure's alert stays
// the reason while vgate re-initiates, until the peering is up again.
func Decide(o Observation) api.DownReason {
	switch {
	case !o.Running:
		return api.ReasonCharonNotRunning
	case o.IKE == "ESTABLISHED" && o.Child == "INSTALLED":
		return ""
	}
	switch o.Alert {
	case AlertProposalMismatchIKE, AlertProposalMismatchChld:
		return api.ReasonNoProposalChosen
	case AlertLocalAuthFailed, AlertPeerAuthFailed, AlertAuthorizationFailed:
		return api.ReasonAuthFailed
	case AlertRetransmitTimeout, AlertHalfOpenTimeout:
		if o.WasUp {
			return api.ReasonDPDTimeout
		}
	}
	if o.IKE == "ESTABLISHED" {
		return api.ReasonChildSADown
	}
	return api.ReasonIKEConnecting
}
