package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vgate-project/vgate/gateway/relay"
)

// cmdRelay runs the TCP/443 relay (gateway/relay) in the foreground until
// SIGINT or SIGTERM; SIGHUP re-reads its accepted keys.
func cmdRelay(args []string, stderr io.Writer) error {
	path, log, err := serviceFlags("relay", "/etc/vgate/relay.yaml", "relay config file", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := relay.LoadConfig(path)
	if err != nil {
		return &exitError{1, err}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return relay.Run(ctx, cfg, log, reload)
}
