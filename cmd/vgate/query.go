package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/control"
)

// requestTimeout bounds one control request of the CLI.
const requestTimeout = 30 * time.Second

// gatewayFlags are --socket and --config, which find a running gateway.
type gatewayFlags struct {
	socket, config *string
	stderr         io.Writer
}

func addGatewayFlags(fs *flag.FlagSet, stderr io.Writer) *gatewayFlags {
	return &gatewayFlags{
		socket: fs.String("socket", "", "control socket of the gateway"),
		config: fs.String("config", "", "config file of the gateway (only its control_socket is used)"),
		stderr: stderr,
	}
}

// client returns a client for the gateway's socket: --socket, else the
// control_socket of --config, else the default. Only control_socket is
// read from --config; if the rest of the file does not validate (it was
// edited since the gateway started), a warning goes to stderr.
func (g *gatewayFlags) client() (*control.Client, error) {
	switch {
	case *g.socket != "" && *g.config != "":
		return nil, &exitError{2, errors.New("give --socket or --config, not both")}
	case *g.socket != "":
		return control.NewClient(*g.socket), nil
	case *g.config != "":
		sock, err := config.ControlSocket(*g.config)
		if errors.Is(err, config.ErrSyntax) && sock != "" {
			// Broken YAML is when an operator most needs status: go on
			// with the socket the file names, or the default.
			fmt.Fprintf(g.stderr, "vgate: note: %s is not valid YAML (%v); using control socket %s\n", *g.config, err, sock)
			return control.NewClient(sock), nil
		}
		if err != nil {
			return nil, err
		}
		if data, err := os.ReadFile(*g.config); err == nil {
			if _, err := config.Parse(data, *g.config); err != nil {
				n := 1
				var errs config.Errors
				if errors.As(err, &errs) {
					n = len(errs)
				}
				fmt.Fprintf(g.stderr, "vgate: warning: %s has %d problem(s) (see vgate check); using its control_socket %s\n", *g.config, n, sock)
			}
		}
		return control.NewClient(sock), nil
	}
	return control.NewClient(config.DefaultControlSocket), nil
}

// connect is the gateway's control client and the context of one request
// to it, which ends after requestTimeout (cancel releases it).
func (g *gatewayFlags) connect() (*control.Client, context.Context, context.CancelFunc, error) {
	c, err := g.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	return c, ctx, cancel, nil
}

// explain adds what the user can do about err, decided by its cause and
// code, never by its text.
func (g *gatewayFlags) explain(err error) error {
	var hint string
	switch {
	case errors.Is(err, syscall.ENOENT):
		switch {
		case *g.socket != "":
			hint = "is the gateway running?"
		case *g.config != "":
			hint = "is the gateway of " + *g.config + " running?"
		default:
			hint = "is the gateway running? pass --socket or --config if it uses another control socket"
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = "no gateway is listening there: a stale socket of a stopped gateway"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, api.CodeForbidden):
		hint = "the control socket is root only"
	case errors.Is(err, api.CodeNoP2S):
		hint = "add a point_to_site section to the config and reload"
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// query runs a read-only command: flags --json, --socket and --config, one
// request, then JSON or the table printer.
func query[T any](name string, args []string, stdout, stderr io.Writer,
	fetch func(*control.Client, context.Context) (T, error), table func(io.Writer, T)) error {
	fs := newFlags(name, stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	gf := addGatewayFlags(fs, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	c, ctx, cancel, err := gf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	v, err := fetch(c, ctx)
	if err != nil {
		return gf.explain(err)
	}
	if *asJSON {
		return printJSON(stdout, v)
	}
	table(stdout, v)
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
