// Package api owns the types of the gateway's control API: everything the
// control socket serves (status, bgp, routes, point-to-site clients,
// capture), what the Prometheus collector reads (Metrics), the error body
// with its machine-readable code, and the code vocabularies (why a peering
// is down, why a reload was refused) as typed constants with an ordered
// list each.
//
// It is a leaf: it imports only the standard library, so the CLI, the
// collector and the gateway meet on these types without importing each
// other. JSON field names are part of the contract (scripts read them);
// they change only with a new API version.
package api
