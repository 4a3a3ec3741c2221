package e2e

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/netlab"
)

// host1 ── gw1 ══ WireGuard over 198.18.0.0/24 ══ gw2 ── host2
//
//	forger 198.18.0.250 on the WAN bridge: sees every initiation
//
// An on-path observer of the underlay (same Wi-Fi, an ISP tap) reads each
// handshake initiation's sender index and answers it with 20 forged
// responses a second, alternately from its own address and from the
// peer's (spoofed), with a valid MAC1: it knows the gateways' public keys.
// A forged response never completes a handshake; a handshake gate
// (gateway/wgbind/hsgate.go) that let one hold the device, or push the real
// response out of its waiting slot, would keep a new tunnel down for as
// long as the forger runs. The tunnel must come up in its usual time — the
// same start without the forger, in the same run — and stay up, also
// across a restart of one end.
func TestForgedResponses(t *testing.T) {
	lab, gws := site(t, 2)
	netlab.Mesh(gws...)
	n1, n2 := lab.Network(1), lab.Network(2)

	// firstPing starts both gateways (gw2 restarted alone when only2) and
	// returns how long after the last start host1's first ping to host2
	// was answered (pings every 50 ms; wireguard-go sends the ones it
	// stages as soon as its handshake completes).
	firstPing := func(what string, only2 bool) time.Duration {
		t.Helper()
		if !only2 {
			start(t, gws[0])
		}
		start(t, gws[1])
		begin := time.Now()
		out, err := lab.Run(n1.HostNS, "ping", "-n", "-q", "-c", "1", "-i", "0.05", "-w", "60", n2.HostAddr.String())
		took := time.Since(begin)
		if err != nil {
			t.Fatalf("%s: host1 did not reach host2 for %v: %v\n%s", what, took.Round(time.Second), err, out)
		}
		t.Logf("%s: first ping answered %v after the start", what, took.Round(10*time.Millisecond))
		return took
	}
	// staysUp pings for 10 s and fails on more than 5% loss.
	staysUp := func(what string) {
		t.Helper()
		loss, out, err := pingLoss(lab, n1.HostNS, n2.HostAddr.String(), 100, "0.1")
		if err != nil || loss > 5 {
			t.Fatalf("%s: %d%% of 100 pings lost (%v)\n%s", what, loss, err, out)
		}
	}
	stop := func() {
		for _, g := range gws {
			if err := g.Stop(); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The usual time, measured now on this machine.
	base := firstPing("without the forger", false)
	if err := gws[1].Stop(); err != nil {
		t.Fatal(err)
	}
	baseRestart := firstPing("without the forger, gw2 restarted", true)
	stop()

	f := &netlab.ResponseForger{
		Own:      netip.MustParsePrefix("198.18.0.250/24"),
		Keys:     map[netip.Addr]keys.PublicKey{n1.GatewayUnderlay: gws[0].Pub, n2.GatewayUnderlay: gws[1].Pub},
		Rate:     20,
		Lifetime: 30 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lab.ForgeResponses(ctx, f) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forger: %v", err)
		}
	})
	time.Sleep(200 * time.Millisecond) // its sockets open

	attacked := firstPing("with the forger", false)
	staysUp("with the forger")
	if err := gws[1].Stop(); err != nil {
		t.Fatal(err)
	}
	attackedRestart := firstPing("with the forger, gw2 restarted", true)
	staysUp("with the forger, after gw2's restart")

	fs := f.Stats()
	t.Logf("forger: %d initiations seen, %d forged responses sent", fs.Indices, fs.Sent)
	if fs.Indices < 2 || fs.Sent < 20 {
		t.Fatalf("the forger saw %d initiations and sent %d responses: no attack took place", fs.Indices, fs.Sent)
	}
	// The forgeries reached the tunnel devices' handshakes: their first,
	// with a wrong MAC1, was dropped at the front door.
	badMAC := uint64(0)
	for _, g := range gws {
		st, err := g.Status()
		if err != nil {
			t.Fatal(err)
		}
		badMAC += st.Port.DroppedResponseBadMAC
		t.Logf("%s port: responses dropped for a bad MAC1 %d, as later ones %d", g.Name, st.Port.DroppedResponseBadMAC, st.Port.DroppedResponseLater)
	}
	if badMAC == 0 {
		t.Error("no forged response with a wrong MAC1 was dropped: the forgeries did not reach a handshake in flight")
	}

	// Usual time: less than one wireguard-go handshake retry (5 s) later
	// than without the forger; that is, no handshake lost to it.
	for _, c := range []struct {
		what           string
		base, attacked time.Duration
	}{{"start", base, attacked}, {"restart of gw2", baseRestart, attackedRestart}} {
		t.Logf("%s: first ping %v without the forger, %v with it (%.2f×)", c.what,
			c.base.Round(10*time.Millisecond), c.attacked.Round(10*time.Millisecond), float64(c.attacked)/float64(c.base))
		if limit := c.base + 2500*time.Millisecond; c.attacked > limit {
			t.Errorf("%s: first ping %v after the start with the forger, %v without: a handshake was lost to forged responses",
				c.what, c.attacked.Round(10*time.Millisecond), c.base.Round(10*time.Millisecond))
		}
	}
}
