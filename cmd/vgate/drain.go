package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vgate-project/vgate/api"
)

// cmdDrain starts or ends a drain (--undo); with --wait it waits until the
// gateway says drained (every peer has moved its traffic) or the time is up.
func cmdDrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("drain", stderr)
	undo := fs.Bool("undo", false, "stop draining: announce the routes as usual again")
	wait := fs.Duration("wait", 0, "wait up to this long until the gateway is drained (exit 1 if not)")
	asJSON := fs.Bool("json", false, "print JSON")
	gf := addGatewayFlags(fs, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *undo && *wait > 0 {
		return &exitError{2, errors.New("drain: --wait waits for a drain, not for --undo")}
	}
	c, ctx, cancel, err := gf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	st, err := c.Drain(ctx, api.DrainRequest{Drain: !*undo})
	if err != nil {
		return gf.explain(err)
	}
	deadline := time.Now().Add(*wait)
	for *wait > 0 && st.State != api.Drained && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		s, err := c.Status(ctx)
		if err != nil {
			return gf.explain(err)
		}
		if s.Drain == nil {
			return errors.New("drain: the gateway stopped draining (vgate drain --undo, or a reload)")
		}
		st = *s.Drain
	}
	if *asJSON {
		if err := printJSON(stdout, st); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, drainText(&st))
	}
	if *wait > 0 && st.State != api.Drained {
		return &exitError{1, fmt.Errorf("drain: not drained after %v", *wait)}
	}
	return nil
}

// drainText is the drain in one line, for `vgate drain` and `vgate status`.
func drainText(d *api.DrainStatus) string {
	switch {
	case d == nil || d.State == api.DrainOff:
		return "not draining"
	case d.State == api.Drained:
		return "drained: every peer routes around this gateway"
	}
	return "draining: waiting for " + strings.Join(d.Waiting, ", ") + " to route around this gateway"
}
