package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vgate-project/vgate/gateway/laptop"
)

const connectUsage = `Usage: vgate connect [--interface NAME] FILE

Brings up the WireGuard client config FILE (as 'vgate client add' prints it,
wg-quick format) on this Linux machine: a wireguard-go device on a TUN
interface, the config's addresses on it and routes for its AllowedIPs.
Runs in the foreground; Ctrl-C (or SIGTERM) removes everything again.
Needs root (or CAP_NET_ADMIN).

`

func cmdConnect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("connect", stderr)
	ifname := fs.String("interface", "vgate0", "name of the TUN interface to create")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
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
	c, err := laptop.Up(string(text), *ifname, log)
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
	<-ctx.Done()
	log.Info("disconnecting")
	if err := c.Down(); err != nil {
		return &exitError{1, err}
	}
	fmt.Fprintf(stdout, "vgate connect: %s removed\n", *ifname)
	return nil
}
