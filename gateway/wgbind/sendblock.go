package wgbind

import (
	"errors"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/api"
	"golang.zx2c4.com/wireguard/conn"
)

// Refused sends: a datagram that this host's firewall refuses (an
// nftables or iptables output rule that drops it) fails in sendmsg with
// EPERM. wireguard-go logs every such failure; the device's stats say
// since when its sends have been refused instead, and the gateway turns a
// lasting refusal into the peering's send_blocked state (peering.Evaluate).

// noteSend records the outcome err of a send of n datagrams to ep. A send
// that goes out clears the refusal; it only reads unless one was recorded.
func (b *bind) noteSend(n int, ep conn.Endpoint, err error) {
	if err == nil {
		if b.blockedSince.Load() != 0 {
			b.blockedSince.Store(0)
		}
		return
	}
	if !errors.Is(err, syscall.EPERM) {
		return
	}
	b.refused.Add(uint64(n))
	now := max(int64(time.Since(b.m.epoch)), 1) // 0 means not refused
	if b.blockedSince.CompareAndSwap(0, now) && ep != nil {
		to := ep.DstToString()
		b.blockedTo.Store(&to)
	}
}

// sendStats fills d's refused-send figures.
func (b *bind) sendStats(d *api.PortDevice) {
	d.SendRefused = b.refused.Load()
	if p := b.blockedSince.Load(); p != 0 {
		d.SendBlockedSince = b.m.epoch.Add(time.Duration(p))
		if to := b.blockedTo.Load(); to != nil {
			d.SendBlockedTo = *to
		}
	}
}
