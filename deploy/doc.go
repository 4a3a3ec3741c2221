// Package deploy holds what it takes to run vgate on a VM: the hardened
// systemd unit, example configs per topology, cloud-init user-data, the
// Debian package definition, Prometheus scrape and alert examples and a
// Grafana dashboard. It has no code; its tests validate those files with
// the gateway's own config parser, systemd-analyze and promtool, and check
// that the dashboard and alerts use only metrics the gateway exports.
package deploy
