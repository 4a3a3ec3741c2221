package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/wgspec"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Tunnel is one live site-to-site tunnel: a TUN interface and a
// wireguard-go device with exactly one peer.
type Tunnel struct {
	name   string // peering name
	ifname string
	mtu    int
	dev    *device.Device
	tun    *clampTUN // the TUN seam; carries the capture tap

	mu   sync.Mutex
	peer wgspec.PeerSpec
}

// openTunnel creates the TUN ifname (with wireguard-go's offloads where the
// kernel supports them), wraps it with MSS clamping, starts a device on bind
// and configures its peer. On failure nothing is left behind.
func openTunnel(name, ifname string, mtu int, t tun.Device, bind conn.Bind, priv keys.PrivateKey, peer wgspec.PeerSpec, demand *atomic.Uint64, log *slog.Logger) (*Tunnel, error) {
	fq := newFQTUN(t, mtu, device.MessageTransportHeaderSize) // queue.go
	ct := newClampTUN(fq, mtu)
	ct.fq, ct.recv = fq, newRecvBudget()
	bind = &budgetBind{Bind: bind, send: fq, recv: ct.recv} // budget.go
	ct.demand = demand                                      // demand.go
	ct.src.setAllowed(peer.AllowedIPs)                      // srccheck.go
	if err := ct.nat.set(peer.NAT); err != nil {
		t.Close()
		return nil, fmt.Errorf("tunnel %s: %w", name, err)
	}
	dev := device.NewDevice(ct, bind, DeviceLogger(log.With("tunnel", name)))
	if err := dev.IpcSet(DeviceUAPI(priv, devicePeer(peer))); err != nil {
		dev.Close()
		// The UAPI text held the private key; the error never does.
		return nil, fmt.Errorf("tunnel %s: configure wireguard device: %w", name, IPCErr(err))
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("tunnel %s: device up: %w", name, err)
	}
	return &Tunnel{name: name, ifname: ifname, mtu: mtu, dev: dev, tun: ct, peer: peer}, nil
}

// IPCErr strips an IPCError down to its message (never key material: the
// wireguard-go errors name the failing key, not its value).
func IPCErr(err error) error {
	var ie *device.IPCError
	if errors.As(err, &ie) {
		return errors.New(ie.Error())
	}
	return err
}

// Name is the peering name; IfName the TUN interface.
func (t *Tunnel) Name() string   { return t.name }
func (t *Tunnel) IfName() string { return t.ifname }
func (t *Tunnel) MTU() int       { return t.mtu }

// Peer returns the peer's configured spec.
func (t *Tunnel) Peer() wgspec.PeerSpec {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peer
}

// update moves the peer to want by diff; the device and its sessions stay.
func (t *Tunnel) update(want wgspec.PeerSpec) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !want.NAT.Equal(t.peer.NAT) {
		// Checked first: rules that do not compile change nothing.
		if err := t.tun.nat.set(want.NAT); err != nil { // nat.go
			return fmt.Errorf("tunnel %s: %w", t.name, err)
		}
	}
	if text := UpdateUAPI(devicePeer(t.peer), devicePeer(want)); text != "" {
		if err := t.dev.IpcSet(text); err != nil {
			return fmt.Errorf("tunnel %s: update peer: %w", t.name, IPCErr(err))
		}
	}
	t.tun.src.setAllowed(want.AllowedIPs) // srccheck.go
	t.peer = want
	return nil
}

func (t *Tunnel) setPrivateKey(k keys.PrivateKey) error {
	if err := t.dev.IpcSet("private_key=" + k.Hex() + "\n"); err != nil {
		return fmt.Errorf("tunnel %s: set private key: %w", t.name, IPCErr(err))
	}
	return nil
}

// Stats reads the peer's counters from the device.
func (t *Tunnel) Stats() (PeerStats, error) {
	dump, err := t.dev.IpcGet()
	if err != nil {
		return PeerStats{}, fmt.Errorf("tunnel %s: read device: %w", t.name, err)
	}
	peer := t.Peer()
	st, _, err := ParsePeerStats(dump, peer.PublicKey)
	// The device allows every source; the peer's are checked in the TUN
	// seam (srccheck.go).
	st.AllowedIPs = peer.AllowedIPs
	st.DroppedSource = t.tun.src.dropped.Load()
	st.NAT = t.NATStats() // nat.go
	if t.tun.fq != nil {
		q := t.tun.fq.Stats()
		if t.tun.recv != nil {
			q.RecvInFlight, q.RecvBudget = t.tun.recv.load(), recvBudget
			q.BudgetResyncs += t.tun.recv.resyncs.Load()
		}
		q.Qdisc = QdiscOf(t.ifname)
		st.Queue = &q
	}
	return st, err
}

// close stops the device; wireguard-go closes the TUN, which removes the
// interface and, with it, the kernel routes through it.
func (t *Tunnel) close() { t.dev.Close() }

// DeviceLogger adapts slog to wireguard-go's logger. Its verbose lines are
// per-packet detail: debug. Its errors are mostly about one packet (a
// peer's bad packet, a send that failed): info, limited per message by the
// gateway's handler (gateway/lograte). A send that this host's firewall
// refused (EPERM) is debug: the peering's send_blocked state says it once.
func DeviceLogger(l *slog.Logger) *device.Logger {
	return &device.Logger{
		Verbosef: func(format string, args ...any) {
			if l.Enabled(context.Background(), slog.LevelDebug) {
				l.Debug(fmt.Sprintf(format, args...))
			}
		},
		Errorf: func(format string, args ...any) {
			lv := errorLevel(args)
			if l.Enabled(context.Background(), lv) {
				l.Log(context.Background(), lv, fmt.Sprintf(format, args...))
			}
		},
	}
}

// errorLevel is the level of a wireguard-go error line with args: debug
// when one of them is a refused send (EPERM), else info.
func errorLevel(args []any) slog.Level {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, syscall.EPERM) {
			return slog.LevelDebug
		}
	}
	return slog.LevelInfo
}
