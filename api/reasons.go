package api

// DownReason is why a configured peering is not up, as status and metrics
// show it (the label values of vgate_peering_down_reason). send_blocked
// comes from this host's UDP socket, no_handshake, handshake_stale and
// handshake_unanswered from the WireGuard handshake, probe_dead from the
// tunnel probe, the others from BGP: the lowest failing layer is the
// reason.
type DownReason string

const (
	ReasonNoHandshake    DownReason = "no_handshake"    // no handshake has completed yet
	ReasonHandshakeStale DownReason = "handshake_stale" // the last handshake is too old for a live session
	ReasonBGPDown        DownReason = "bgp_down"        // the tunnel is up but its BGP session is not established
	ReasonPrefixLimit    DownReason = "prefix_limit"    // the BGP session was shut for exceeding its max-prefix
	ReasonBFDDown        DownReason = "bfd_down"        // the peering's BFD session went down: the session is held down
	// ReasonHandshakeUnanswered: the tunnel sends handshake initiations
	// and the peer has answered none for a while (wrong public key on
	// either side, wrong endpoint, UDP blocked).
	ReasonHandshakeUnanswered DownReason = "handshake_unanswered"
	// ReasonSendBlocked: this host refuses the tunnel's UDP datagrams
	// (sendmsg fails with EPERM: a local firewall's output rule).
	ReasonSendBlocked DownReason = "send_blocked"
	// ReasonProbeDead: the tunnel's handshake is fresh but the in-tunnel
	// probe gets no answer (the path died since, or the peer stopped);
	// vgate holds the peering's BGP session down meanwhile.
	ReasonProbeDead DownReason = "probe_dead"

	// IPsec peerings (decided by ipsec.Decide from charon's state and
	// typed alerts):
	ReasonIKEConnecting    DownReason = "ike_connecting"        // the IKE SA is being set up (or the device does not answer yet)
	ReasonNoProposalChosen DownReason = "no_proposal_chosen"    // the two sides share no IKE or ESP proposal
	ReasonAuthFailed       DownReason = "authentication_failed" // the pre-shared key or an identity does not match
	ReasonDPDTimeout       DownReason = "dpd_timeout"           // the device stopped answering dead-peer detection
	ReasonChildSADown      DownReason = "child_sa_down"         // IKE is up but no child SA (ESP) is installed
	ReasonCharonNotRunning DownReason = "charon_not_running"    // vgate's charon is not running (missing, crashed, restarting)
)

// DownReasons lists every down reason, in a fixed order, so that metrics
// can export a stable series per reason.
var DownReasons = []DownReason{ReasonNoHandshake, ReasonHandshakeStale, ReasonBGPDown, ReasonPrefixLimit, ReasonHandshakeUnanswered,
	ReasonIKEConnecting, ReasonNoProposalChosen, ReasonAuthFailed, ReasonDPDTimeout, ReasonChildSADown, ReasonCharonNotRunning,
	ReasonSendBlocked, ReasonProbeDead, ReasonBFDDown}

// WireGuardDownReasons and IPsecDownReasons are the reasons a peering of
// each type can be down for (the series vgate_peering_down_reason has).
var (
	WireGuardDownReasons = []DownReason{ReasonNoHandshake, ReasonHandshakeStale, ReasonBGPDown, ReasonPrefixLimit, ReasonHandshakeUnanswered, ReasonSendBlocked, ReasonProbeDead, ReasonBFDDown}
	IPsecDownReasons     = []DownReason{ReasonIKEConnecting, ReasonNoProposalChosen, ReasonAuthFailed, ReasonDPDTimeout, ReasonChildSADown, ReasonCharonNotRunning, ReasonBGPDown, ReasonPrefixLimit, ReasonProbeDead, ReasonBFDDown}
)

// RefusalReason is why a reload was refused (the label values of
// vgate_refusals_total).
type RefusalReason string

const (
	RefusedTunnelLimit     RefusalReason = "tunnel_limit"     // more peerings than max_tunnels
	RefusedOverlap         RefusalReason = "overlap"          // overlapping address spaces
	RefusedInvalid         RefusalReason = "invalid"          // any other config problem
	RefusedRestartRequired RefusalReason = "restart_required" // a change a running gateway cannot take
)

// RefusalReasons lists every refusal reason, in a fixed order.
var RefusalReasons = []RefusalReason{RefusedTunnelLimit, RefusedOverlap, RefusedInvalid, RefusedRestartRequired}
