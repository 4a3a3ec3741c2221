package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/gateway/laptop"
)

const connectUsage = `Usage: vgate connect [--interface NAME] [--relay wss://HOST/ [--relay-pin sha256:…]] FILE

Brings up the WireGuard client config FILE (as 'vgate client add' prints it,
wg-quick format) on this Linux machine: a wireguard-go device on a TUN
interface, the config's addresses on it and routes for its AllowedIPs.
Runs in the foreground; Ctrl-C (or SIGTERM) removes everything again.
Needs root (or CAP_NET_ADMIN). With --relay, the connection falls back to
that relay (the gateway's point_to_site.relay) when UDP to the gateway does
not get through, and moves back when it does.

`

func cmdConnect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("connect", stderr)
	ifname := fs.String("interface", "vgate0", "name of the TUN interface to create")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	relayURL := fs.String("relay", "", "relay to fall back to when UDP is blocked: wss://host[:port]/ (the gateway's point_to_site.relay.url)")
	relayPin := fs.String("relay-pin", "", "SHA-256 pin of the relay's certificate, sha256:<64 hex> (its point_to_site.relay.pin)")
	fs.Usage = func() {
		fmt.Fprint(stderr, connectUsage)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{2, errors.New("connect: want exactly one config FILE")}
	}
	log, err := newLogger(stderr, "text", *logLevel)
	if err != nil {
		return err
	}
	text, err := os.ReadFile(pos[0])
	if err != nil {
		return &exitError{1, err}
	}
	if *relayPin != "" && *relayURL == "" {
		return &exitError{2, errors.New("connect: --relay-pin needs --relay")}
	}
	c, err := laptop.UpOptions(string(text), *ifname, log, laptop.Options{RelayURL: *relayURL, RelayPin: *relayPin})
	if err != nil {
		return &exitError{1, fmt.Errorf("%s: %w", pos[0], err)}
	}
	fmt.Fprintf(stdout, "vgate connect: %s up, address %s, routes %s; Ctrl-C disconnects\n",
		*ifname, laptop.JoinPrefixes(c.Addresses), laptop.JoinPrefixes(c.Routes))
	if len(c.DNS) > 0 {
		fmt.Fprintf(stdout, "vgate connect: DNS servers %s are not set by vgate; point your resolver at them (e.g. resolvectl dns %s %s)\n",
			strings.Join(c.DNS, ", "), *ifname, strings.Join(c.DNS, " "))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go c.Watch(ctx, log)
	if *relayURL != "" {
		go watchPath(ctx, c, log)
	}
	<-ctx.Done()
	log.Info("disconnecting")
	if err := c.Down(); err != nil {
		return &exitError{1, err}
	}
	fmt.Fprintf(stdout, "vgate connect: %s removed\n", *ifname)
	return nil
}

// watchPath logs each change of the connection's path (direct or relay).
func watchPath(ctx context.Context, c *laptop.Conn, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := c.Path()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p := c.Path(); p != last {
			log.Info("connection path changed", "path", p, "was", last)
			last = p
		}
	}
}
