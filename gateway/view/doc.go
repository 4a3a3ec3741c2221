// Package view holds the views of a running gateway. They read the
// gateway's observations (gateway/observe, through the Gateway interface)
// and never its internals, and the gateway imports none of them
// (internal/quality):
//
//	status.go  `vgate status` of one observation (pure), peering states from peering.Evaluate
//	recent.go  the last-minute growth of the drop counters status shows
//	nat.go     a peering's NAT rules with the seam's counters
//	view.go    View: status with that history, what a Prometheus scrape reads, `vgate capture`
//	watch.go   the watcher that logs every tunnel state and path change
package view
