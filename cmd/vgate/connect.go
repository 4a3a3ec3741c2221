package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vgate-project/vgate/gateway/laptop"
)

const connectUsage = `Usage: vgate connect [--interface NAME] FILE

Brings up the WireGuard client config FILE (as 'vgate client add' prints it,
wg-quick format) on this Linux machine: a wireguard-go device on a TUN
interface, the config's addresses on it and routes for its AllowedIPs.
The config's DNS servers and search domains are set with resolvectl where
systemd-resolved runs (otherwise vgate prints what to set; see --dns).
Runs in the foreground; Ctrl-C (or SIGTERM) removes everything again.
Needs root (or CAP_NET_ADMIN).

`

func cmdConnect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("connect", stderr)
	ifname := fs.String("interface", "vgate0", "name of the TUN interface to create")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	dnsMode := fs.String("dns", "auto", "set the resolver to the config's DNS: auto (resolvectl where systemd-resolved runs, else print what to set), print, off")
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
	mode := laptop.DNSMode(*dnsMode)
	if mode != laptop.DNSAuto && mode != laptop.DNSPrint && mode != laptop.DNSOff {
		return &exitError{2, fmt.Errorf("connect: --dns %q: want auto, print or off", *dnsMode)}
	}
	log, err := newLogger(stderr, "text", *logLevel)
	if err != nil {
		return err
	}
	text, err := os.ReadFile(pos[0])
	if err != nil {
		return &exitError{1, err}
	}
	c, err := laptop.Up(string(text), *ifname, log)
	if err != nil {
		return &exitError{1, fmt.Errorf("%s: %w", pos[0], err)}
	}
	fmt.Fprintf(stdout, "vgate connect: %s up, address %s, routes %s; Ctrl-C disconnects\n",
		*ifname, laptop.JoinPrefixes(c.Addresses), laptop.JoinPrefixes(c.Routes))
	return runConnected(c, *ifname, mode, stdout, log)
}

// runConnected sets the resolver, waits for Ctrl-C or SIGTERM, restores
// the resolver and takes the connection down.
func runConnected(c *laptop.Conn, ifname string, mode laptop.DNSMode, stdout io.Writer, log *slog.Logger) error {
	rp := laptop.PlanResolver(mode, ifname, c.DNS, laptop.CurrentResolverEnv())
	if err := laptop.RunResolver(rp.Set); err != nil {
		log.Warn("could not set the resolver; set it yourself", "error", err)
		rp.Restore = nil
	} else if rp.Message != "" {
		fmt.Fprintf(stdout, "vgate connect: %s\n", rp.Message)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go c.Watch(ctx, log)
	<-ctx.Done()
	log.Info("disconnecting")
	if err := laptop.RunResolver(rp.Restore); err != nil {
		log.Warn("could not restore the resolver", "error", err)
	}
	if err := c.Down(); err != nil {
		return &exitError{1, err}
	}
	fmt.Fprintf(stdout, "vgate connect: %s removed\n", ifname)
	return nil
}
