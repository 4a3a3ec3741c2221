package netlab

import (
	"fmt"
	"strconv"
)

// CutUDP drops, in namespace ns, every UDP packet to or from local port
// port (nftables: an inet table of its own, input and output), as a dead
// path would: for a WireGuard listen port, the tunnel stops carrying
// anything while both ends still run. The returned function restores the
// path. Names are per port, so several cuts can coexist.
func (l *Lab) CutUDP(ns string, port int) (restore func() error, err error) {
	table := "vgcut" + strconv.Itoa(port)
	p := strconv.Itoa(port)
	cmds := [][]string{
		{"nft", "add", "table", "inet", table},
		{"nft", "add", "chain", "inet", table, "in", "{ type filter hook input priority -10 ; }"},
		{"nft", "add", "chain", "inet", table, "out", "{ type filter hook output priority -10 ; }"},
		{"nft", "add", "rule", "inet", table, "in", "udp", "dport", p, "counter", "drop"},
		{"nft", "add", "rule", "inet", table, "out", "udp", "sport", p, "counter", "drop"},
	}
	for _, c := range cmds {
		if out, err := l.Run(ns, c...); err != nil {
			_, _ = l.Run(ns, "nft", "delete", "table", "inet", table)
			return nil, fmt.Errorf("netlab: %v in %s: %w\n%s", c, ns, err, out)
		}
	}
	return func() error {
		_, err := l.Run(ns, "nft", "delete", "table", "inet", table)
		return err
	}, nil
}
