package api

import "net/netip"

// DNSStatus is the name server of `vgate status` (config dns).
type DNSStatus struct {
	Address netip.Addr `json:"address"` // the tunnel address, port 53
	Zone    string     `json:"zone"`
	// Queries by outcome (DNSOutcomes).
	Queries map[string]uint64 `json:"queries"`
	// QueriesLastMinute is their growth over the last minute, where the
	// gateway can tell.
	QueriesLastMinute map[string]uint64 `json:"queries_last_minute,omitempty"`
}

// DNSOutcomes are the outcomes of a query, the label values of
// vgate_dns_queries_total.
var DNSOutcomes = []string{"answer", "nxdomain", "refused", "forwarded", "servfail", "malformed", "dropped"}

// EnrollStatus is the enrollment listener of `vgate status`
// (point_to_site.enroll).
type EnrollStatus struct {
	Listen  string `json:"listen"`
	URL     string `json:"url"`
	Pin     string `json:"pin"`
	Pending int    `json:"invites_pending"`
	// Attempts by result (EnrollResults).
	Attempts map[string]uint64 `json:"attempts"`
	// AttemptsLastMinute is their growth over the last minute, where the
	// gateway can tell.
	AttemptsLastMinute map[string]uint64 `json:"attempts_last_minute,omitempty"`
}

// EnrollResults are the results of an enrollment attempt, the label
// values of vgate_enroll_attempts_total.
var EnrollResults = []string{"enrolled", "invite_unknown", "invite_used", "invite_expired", "invite_revoked", "invite_stale", "rate_limited", "bad_request", "enroll_failed"}
