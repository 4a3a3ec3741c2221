// Package environ holds the facts of the outside world the planner reads
// (plan.Env), gathered outside the gateway's lock so that planning — on
// every RIB change — never waits on DNS or the kernel: the peerings'
// endpoint names resolved (resolve.go) and the underlay MTUs toward them
// (underlay.go), at start and reload (Refresh) and again while running
// (Run: endpoints that move).
package environ
