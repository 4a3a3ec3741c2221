// Package ipsec is the IPsec tunnel kind (tunnel.Kind): one charon for
// all IPsec peerings, driven through the top-level ipsec package (the
// daemon, its config and its state), and a capture tap on charon's TUN
// (capture.go). Inside this package the name ipsec is that top-level
// package.
package ipsec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/tunnel"
	"github.com/vgate-project/vgate/ipsec"
)

// Kind runs the IPsec peerings: one charon (ipsec.Daemon) for all of
// them, its files in <control socket's directory>/charon (vgate's runtime
// directory: /run/vgate under deploy/vgate.service).
type Kind struct {
	d      *ipsec.Daemon
	log    *slog.Logger
	warned map[string]string // peering → the proposals last warned about
	mu     sync.Mutex
	remote map[string][]netip.Prefix // peering → its remote traffic selectors (capture)
	// capMu guards captures: the running capture of each peering
	// (capture.go).
	capMu    sync.Mutex
	captures map[string]*ipsecCapture
}

// charonReadyWait bounds how long the first apply waits for charon's TUN,
// which the routes of IPsec peerings go through.
const charonReadyWait = 20 * time.Second

// New starts charon with its files in runDir/charon and waits for its
// TUN. onRestart is called each time charon runs again after a restart.
func New(runDir string, onRestart func(), log *slog.Logger) (*Kind, error) {
	d, err := ipsec.Start(ipsec.Options{Dir: filepath.Join(runDir, "charon"), Log: log.With("component", "ipsec"), OnRunning: onRestart})
	if err != nil {
		return nil, err
	}
	if err := d.WaitRunning(charonReadyWait); err != nil {
		d.Close()
		return nil, fmt.Errorf("ipsec: %w", err)
	}
	return &Kind{d: d, log: log, warned: map[string]string{}, remote: map[string][]netip.Prefix{}, captures: map[string]*ipsecCapture{}}, nil
}

func (k *Kind) Set(ctx context.Context, _ keys.PrivateKey, want []plan.Tunnel) error {
	peers := make([]ipsec.Peer, len(want))
	remote := make(map[string][]netip.Prefix, len(want))
	for i, t := range want {
		peers[i] = t.IPsec
		remote[t.Name] = t.IPsec.RemoteTS
		k.warnLegacy(t.IPsec)
	}
	k.mu.Lock()
	k.remote = remote
	k.mu.Unlock()
	return k.d.Set(ctx, peers)
}

func (k *Kind) Tunnel(name string) tunnel.Tunnel {
	if _, ok := k.d.State(name); !ok {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return &ipsecTunnel{d: k.d, k: k, name: name, remote: k.remote[name]}
}

func (k *Kind) Close() error { return k.d.Close() }

// Port: charon's IKE sockets are its own; vgate counts nothing there.
func (k *Kind) Port() *api.PortStats { return nil }

// Demand: IPsec tunnels have no demand counter.
func (k *Kind) Demand(string) *atomic.Uint64 { return nil }

// View is the peering's down reason (ipsec.Decide) and its SAs.
func (k *Kind) View(name string) tunnel.View {
	down, st := (&ipsecTunnel{d: k.d, name: name}).ipsecStatus()
	return tunnel.View{Down: down, IPsec: st}
}

// ipsecTunnel is one IPsec peering as status, metrics and capture see it.
type ipsecTunnel struct {
	d      *ipsec.Daemon
	k      *Kind
	name   string
	remote []netip.Prefix // its remote traffic selectors
}

func (t *ipsecTunnel) Name() string   { return t.name }
func (t *ipsecTunnel) IfName() string { return ipsec.IfName }
func (t *ipsecTunnel) MTU() int       { return ipsec.MTU }

// Stats are the peering's byte counters (its child SAs, summed over
// rekeyings) and, as the "handshake", the time its SAs came up, or while
// it is down the last time it was up. The endpoint is the IKE SA's, or
// the configured one when no SA ever came up.
func (t *ipsecTunnel) Stats() (dataplane.PeerStats, error) {
	s, ok := t.d.State(t.name)
	if !ok {
		return dataplane.PeerStats{}, fmt.Errorf("ipsec peering %q is not loaded", t.name)
	}
	return ipsecStats(s), nil
}

func ipsecStats(s ipsec.State) dataplane.PeerStats {
	st := dataplane.PeerStats{Endpoint: s.Endpoint, LastHandshake: s.UpSince, RxBytes: s.RxBytes, TxBytes: s.TxBytes}
	if s.Reason != "" || st.LastHandshake.IsZero() {
		st.LastHandshake = s.LastUp
	}
	if st.Endpoint == "" {
		st.Endpoint = s.Remote
	}
	return st
}

// ipsecStatus is the peering's down reason (ipsec.Decide) and its SAs.
func (t *ipsecTunnel) ipsecStatus() (api.DownReason, *api.IPsecStatus) {
	s, ok := t.d.State(t.name)
	if !ok {
		return api.ReasonCharonNotRunning, nil
	}
	last := s.LastError
	if api.DownReason(s.Reason) == api.ReasonCharonNotRunning && s.CharonStartFailed != "" {
		last = "charon could not start: " + s.CharonStartFailed
	}
	return api.DownReason(s.Reason), &api.IPsecStatus{
		ESPMode: string(s.ESPMode), ESPModeText: s.ESPMode.Describe(),
		IKEState: s.IKE, ChildState: s.Child, UpSince: s.UpSince,
		IKERekeys: s.IKERekeys, ChildRekeys: s.ChildRekeys, LastAlert: last,
	}
}

// warnLegacy warns once per change about a peering's weak proposals
// (allowed by legacy: true).
func (k *Kind) warnLegacy(p ipsec.Peer) {
	var weak []string
	for _, s := range p.IKE {
		if errors.Is(ipsec.CheckProposal(s, false, false), ipsec.ErrLegacy) {
			weak = append(weak, s)
		}
	}
	for _, s := range p.ESP {
		if errors.Is(ipsec.CheckProposal(s, true, false), ipsec.ErrLegacy) {
			weak = append(weak, s)
		}
	}
	key := strings.Join(weak, ",")
	if key != "" && k.warned[p.Name] != key {
		k.log.Warn("IPsec peering uses legacy (weak) algorithms, allowed by legacy: true; move the device to a stronger policy", "peering", p.Name, "proposals", key)
	}
	k.warned[p.Name] = key
}
