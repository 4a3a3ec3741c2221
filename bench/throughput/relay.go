package main

import (
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/netlab"
)

// relayWait bounds the wait for a tunnel through the relay: it comes up
// after two unanswered handshakes over UDP (about 10 s).
const relayWait = 45 * time.Second

// relayNetworks is how many lab networks mode needs beyond the two sites.
func relayNetworks(mode string) int {
	if mode == "vgate-relay" || mode == "vgate0-relay" {
		return 1
	}
	return 0
}

// setupVgateRelay runs `vgate relay` in n3's gateway namespace, drops all
// UDP on both gateways' underlay (nftables) and runs vgate on both, each
// peering naming the relay.
func setupVgateRelay(m *ModeRun, n1, n2, n3 *netlab.Network) error {
	gws, err := vgatePair(m, n1, n2)
	if err != nil {
		return err
	}
	r := m.lab.NewRelay(n3.GatewayNS, n3.GatewayUnderlay.String(), 443, m.Binary)
	r.Accept = []keys.PublicKey{gws[0].Pub, gws[1].Pub}
	pin, err := r.Start()
	if err != nil {
		return err
	}
	m.gws = append(m.gws, r.Proc())
	netlab.Mesh(gws...)
	for _, g := range gws {
		for i := range g.Peerings {
			g.Peerings[i].RelayURL, g.Peerings[i].RelayPin = r.URL(), pin
		}
		if err := m.lab.BlockUDP(g.Net.GatewayNS); err != nil {
			return err
		}
		if err := g.WriteConfig(); err != nil {
			return err
		}
		sock := m.lab.Path(g.Name + "-pprof.sock") // -cpuprofile (setupVgate)
		m.pprof = append(m.pprof, sock)
		p, err := m.lab.Start(g.Net.GatewayNS, g.LogPath, "env", "VGATE_DEBUG_PPROF="+sock, g.Bin, "run", "--config", g.ConfigPath)
		if err != nil {
			return err
		}
		m.gws = append(m.gws, p)
	}
	return nil
}
