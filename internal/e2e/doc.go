// Package e2e holds vgate's lab tests: real `vgate run` processes in
// network namespaces (internal/netlab) with real TUNs, wireguard-go and
// kernel routes, hosts behind them exchanging pings and TCP data. They need
// root (CI runs as root) and skip loudly without it. The vgate binary comes
// from $VGATE_BIN (make test sets it) or is built once per test run.
package e2e
