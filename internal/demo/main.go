// Command demo is `make demo`: three networks in network namespaces, a vgate
// gateway in each, full-mesh WireGuard tunnels, and traffic between hosts of
// different networks. Everything it creates is removed when it ends, also on
// Ctrl-C or failure.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/netlab"
)

const diagram = `
        host1 10.1.0.2            host2 10.2.0.2            host3 10.3.0.2
            │                         │                         │
   ┌────────┴────────┐       ┌────────┴────────┐       ┌────────┴────────┐
   │ gw1  vgate      │       │ gw2  vgate      │       │ gw3  vgate      │
   │ net1 10.1/16    │       │ net2 10.2/16    │       │ net3 10.3/16    │
   └────────┬────────┘       └────────┬────────┘       └────────┬────────┘
      198.18.0.1                 198.18.0.2                 198.18.0.3
            └──────────── underlay (bridge, UDP 51820) ─────────┘
          every gateway peers with the other two: 3 encrypted tunnels
`

func main() {
	vgate := flag.String("vgate", "bin/vgate", "vgate binary")
	flag.Parse()
	if err := run(*vgate); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

// bold wraps headings in ANSI bold on a terminal, and in nothing otherwise.
var bold = func() [2]string {
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return [2]string{"\033[1m", "\033[0m"}
	}
	return [2]string{}
}()

func step(format string, args ...any) {
	fmt.Printf("\n"+bold[0]+"==> "+format+bold[1]+"\n", args...)
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func run(bin string) error {
	if !netlab.Root() {
		return fmt.Errorf("the demo creates network namespaces and must run as root (sudo make demo)")
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("vgate binary: %w (run make build)", err)
	}
	lab, err := netlab.New("")
	if err != nil {
		return err
	}
	// Clean up on every way out, Ctrl-C included.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Println("\ninterrupted: cleaning up")
		lab.Close()
		os.Exit(130)
	}()
	defer func() {
		step("Cleaning up: stopping gateways, deleting namespaces %s-*", lab.Prefix)
		if err := lab.Close(); err != nil {
			fmt.Println("    cleanup:", err)
		} else {
			fmt.Println("    done; nothing is left behind")
		}
	}()

	step("Building three networks in network namespaces (prefix %s)", lab.Prefix)
	fmt.Print(diagram)
	if _, err := lab.AddNetworks(3); err != nil {
		return err
	}
	var gws []*netlab.Gateway
	for i := 1; i <= 3; i++ {
		g, err := lab.NewGateway(lab.Network(i), bin)
		if err != nil {
			return err
		}
		gws = append(gws, g)
	}
	netlab.Mesh(gws...)

	step("The config of gw1 (%s)", gws[0].ConfigPath)
	fmt.Println(indent(gws[0].Render()))
	for _, g := range gws {
		if err := g.WriteConfig(); err != nil {
			return err
		}
		out, err := g.CLI("check", "--config", g.ConfigPath)
		fmt.Println(indent("$ vgate check   # " + g.Name + "\n" + out))
		if err != nil {
			return err
		}
	}

	step("Starting a gateway in each network: vgate run --config netN.yaml")
	for _, g := range gws {
		if err := g.Start(); err != nil {
			return err
		}
		fmt.Printf("    %s running (pid %d), log %s\n", g.Name, g.Proc().Pid(), g.LogPath)
	}

	step("Hosts of different networks ping each other through the tunnels")
	pairs := [][2]int{{1, 2}, {1, 3}, {2, 3}}
	for _, p := range pairs {
		a, b := lab.Network(p[0]), lab.Network(p[1])
		if err := lab.WaitPing(a.HostNS, b.HostAddr, 15*time.Second); err != nil {
			return fmt.Errorf("host%d -> host%d: %w", p[0], p[1], err)
		}
		out, err := lab.Run(a.HostNS, "ping", "-n", "-c", "3", "-i", "0.2", b.HostAddr.String())
		if err != nil {
			return fmt.Errorf("ping host%d -> host%d: %w", p[0], p[1], err)
		}
		fmt.Printf("    host%d -> host%d (%s): %s\n", p[0], p[1], b.HostAddr, pingSummary(out))
	}
	out, err := lab.Run(lab.Network(3).HostNS, "ping", "-n", "-c", "3", "-i", "0.2", lab.Network(1).HostAddrV6.String())
	if err != nil {
		return fmt.Errorf("IPv6 ping host3 -> host1: %w", err)
	}
	fmt.Printf("    host3 -> host1 (%s, IPv6): %s\n", lab.Network(1).HostAddrV6, pingSummary(out))

	step("A 32 MiB TCP transfer host1 -> host3, checked end to end with SHA-256")
	const size = 32 << 20
	t0 := time.Now()
	if err := lab.TCPTransfer(lab.Network(1).HostNS, lab.Network(3).HostNS, lab.Network(3).HostAddr, size); err != nil {
		return err
	}
	d := time.Since(t0)
	fmt.Printf("    %d MiB intact in %.2fs (%.0f Mbit/s, including setup)\n", size>>20, d.Seconds(), float64(size)*8/d.Seconds()/1e6)

	step("What gw1 shows: vgate status")
	out, err = gws[0].CLI("status", "--socket", gws[0].Socket)
	if err != nil {
		return err
	}
	fmt.Println(indent(out))

	step("The kernel routes gw1 installed (protocol 76 = vgate), one TUN per tunnel")
	routes, _ := lab.Run(lab.Network(1).GatewayNS, "ip", "route", "show", "proto", "76")
	routes6, _ := lab.Run(lab.Network(1).GatewayNS, "ip", "-6", "route", "show", "proto", "76")
	fmt.Println(indent(routes + routes6))

	step("Safety: a peering that overlaps net1's own address space is refused")
	rogue, err := keys.GeneratePrivate() // its own key: the overlap is the one problem shown
	if err != nil {
		return err
	}
	gws[0].Peerings = append(gws[0].Peerings, netlab.Peering{
		Name: "rogue", Network: "rogue", PublicKey: rogue.Public(),
		Spaces: []netip.Prefix{netip.MustParsePrefix("10.1.64.0/18")},
	})
	bad := gws[0].ConfigPath + ".bad"
	if err := os.WriteFile(bad, []byte(gws[0].Render()), 0o600); err != nil {
		return err
	}
	out, err = gws[0].CLI("check", "--config", bad)
	if err == nil {
		return fmt.Errorf("vgate check accepted an overlapping peering")
	}
	fmt.Println(indent("$ vgate check --config net1.yaml.bad\n" + out))
	fmt.Println("    (a reload with this config would be rejected the same way; running tunnels stay up)")
	return nil
}

func pingSummary(out string) string {
	var loss, rtt string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packet loss") {
			for _, f := range strings.Split(l, ",") {
				if strings.Contains(f, "loss") {
					loss = strings.TrimSpace(f)
				}
			}
		}
		if strings.HasPrefix(l, "rtt") {
			if _, v, ok := strings.Cut(l, "= "); ok {
				parts := strings.Split(v, "/")
				if len(parts) > 1 {
					rtt = "avg rtt " + parts[1] + " ms"
				}
			}
		}
	}
	return strings.TrimSpace(loss + ", " + rtt)
}
