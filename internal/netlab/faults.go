package netlab

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
)

// Faults for chaos tests: each is undone by the function it returns (or,
// for a hog, by ending its process). nftables tables get a name unique in
// the lab, so faults of the same kind can overlap.

var faultSeq atomic.Uint64

func faultTable(kind string) string {
	return kind + strconv.FormatUint(faultSeq.Add(1), 10)
}

// nft runs nft commands in ns, each given as its arguments; the returned
// function deletes table (family fam) again.
func (l *Lab) nft(ns, fam, table string, cmds ...[]string) (func() error, error) {
	undo := func() error {
		_, err := l.Run(ns, "nft", "delete", "table", fam, table)
		return err
	}
	for _, c := range cmds {
		if out, err := l.Run(ns, append([]string{"nft"}, c...)...); err != nil {
			_ = undo()
			return nil, fmt.Errorf("netlab: nft %v in %s: %w\n%s", c, ns, err, out)
		}
	}
	return undo, nil
}

// CutBetween drops every IPv4 packet between underlay addresses a and b
// on the lab's bridge, both ways: the tunnel between the two gateways is
// cut while other traffic of each flows.
func (l *Lab) CutBetween(a, b netip.Addr) (func() error, error) {
	t := faultTable("vgcut")
	return l.nft(l.WAN, "bridge", t,
		[]string{"add", "table", "bridge", t},
		[]string{"add", "chain", "bridge", t, "cutfwd", "{ type filter hook forward priority 0 ; }"},
		[]string{"add", "rule", "bridge", t, "cutfwd", "ip", "saddr", a.String(), "ip", "daddr", b.String(), "counter", "drop"},
		[]string{"add", "rule", "bridge", t, "cutfwd", "ip", "saddr", b.String(), "ip", "daddr", a.String(), "counter", "drop"},
	)
}

// LossOn drops tenths/10 of the UDP packets into and out of dev in ns,
// each at random (`numgen random mod 10 < tenths`). For the loss to be
// per packet on the wire, dev should send one segment per packet
// (`gso_max_segs 1`): WireGuard sends UDP GSO batches.
func (l *Lab) LossOn(ns, dev string, tenths int) (func() error, error) {
	if tenths < 1 || tenths > 10 {
		return nil, fmt.Errorf("netlab: loss %d/10 out of range", tenths)
	}
	t, k := faultTable("vgloss"), strconv.Itoa(tenths)
	return l.nft(ns, "inet", t,
		[]string{"add", "table", "inet", t},
		[]string{"add", "chain", "inet", t, "lossin", "{ type filter hook input priority 0 ; }"},
		[]string{"add", "chain", "inet", t, "lossout", "{ type filter hook output priority 0 ; }"},
		[]string{"add", "rule", "inet", t, "lossin", "iifname", dev, "meta", "l4proto", "udp", "numgen", "random", "mod", "10", "<", k, "counter", "drop"},
		[]string{"add", "rule", "inet", t, "lossout", "oifname", dev, "meta", "l4proto", "udp", "numgen", "random", "mod", "10", "<", k, "counter", "drop"},
	)
}

// Hog starts a CPU hog in ns: a shell spinning in a loop, at normal
// priority. The caller ends it with EndHog (by its PID); Close ends it
// too.
func (l *Lab) Hog(ns string) (*Proc, error) {
	return l.Start(ns, "hogs.log", "sh", "-c", "while :; do :; done")
}

// EndHog ends a hog started with Hog.
func EndHog(p *Proc) error {
	if err := p.Signal(syscall.SIGKILL); err != nil && !p.Exited() {
		return err
	}
	<-p.Done()
	return nil
}
