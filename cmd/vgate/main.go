// Command vgate is the vgate SD-WAN gateway: one binary that runs a
// gateway, validates its config, and talks to a running gateway over its
// control socket. It only parses flags and prints: the gateway runs in
// gateway/daemon, the built-in laptop client in gateway/laptop, and every
// other command speaks the control API (package api) through
// gateway/control's client.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `vgate — SD-WAN gateway (WireGuard tunnels between networks)

Usage:
  vgate run     --config FILE        run the gateway in the foreground
  vgate check   --config FILE        validate a config; list every problem
  vgate status  [--json] [--socket PATH | --config FILE]
                                     show the running gateway and its peerings
  vgate reload  [--socket PATH | --config FILE]
                                     re-read the config of a running gateway (as SIGHUP)
  vgate drain   [--undo] [--wait DURATION] [--json] [--socket PATH | --config FILE]
                                     announce the routes least preferred so peers move away
                                     (planned maintenance); --undo ends it; kept across restarts
  vgate routes  [--json] [--socket PATH | --config FILE]
                                     effective routes: local, static, bgp (installed or why not)
  vgate bgp     [--json] [--socket PATH | --config FILE]
                                     bgp sessions: state, prefixes received/accepted/rejected
  vgate capture (--peering NAME | --client NAME) [--count N] [--duration D] -w FILE.pcap
                                     write one peering's (or client's) decrypted packets as pcap
  vgate client  add NAME [--group G]... [--public-key K] [--qr] [--output F] [--invite]
                                     register a laptop or phone, print its WireGuard config
  vgate client  invite NAME --group G... [--expires 24h] [--qr]
                                     a one-time invite token (the device makes its own key)
  vgate client  list [--json] | revoke NAME
                                     point-to-site clients (laptops, phones) and invites
  vgate connect [--relay URL [--relay-pin PIN]] FILE | --invite TOKEN
                                     built-in Linux client: bring up a client config,
                                     or enroll with an invite first
  vgate relay   --config FILE        run a TCP/443 relay (TLS + WebSocket) for peers behind
                                     firewalls that allow only HTTPS
  vgate keygen  [--output FILE [--force]]
                                     print a new private key (as wg genkey), or write it to a 0600 file
  vgate pubkey                       read a private key on stdin, print its public key
  vgate version                      print the version

capture and client also take --socket PATH or --config FILE (default socket /run/vgate/vgate.sock).
Run 'vgate COMMAND -h' for the flags of a command.
`

// exitError carries an exit code through to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(rest, stderr)
	case "check":
		err = cmdCheck(rest, stdout, stderr)
	case "status":
		err = cmdStatus(rest, stdout, stderr)
	case "reload":
		err = cmdReload(rest, stdout, stderr)
	case "drain":
		err = cmdDrain(rest, stdout, stderr) // drain.go
	case "routes":
		err = cmdRoutes(rest, stdout, stderr) // routes.go
	case "bgp":
		err = cmdBGP(rest, stdout, stderr) // bgp.go
	case "capture":
		err = cmdCapture(rest, stdout, stderr)
	case "client":
		err = cmdClient(rest, stdout, stderr) // client.go
	case "connect":
		err = cmdConnect(rest, stdout, stderr) // connect.go
	case "relay":
		err = cmdRelay(rest, stderr) // relay.go
	case "keygen", "genkey":
		err = cmdKeygen(rest, stdout, stderr) // keys.go
	case "pubkey":
		err = cmdPubkey(rest, stdin, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "vgate", buildVersion())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "vgate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "vgate:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "vgate:", err)
	return 1
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; a bad flag is a usage error (exit 2). The flag
// package has already printed what is wrong.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{2, nil}
	}
	return nil
}

// noArgs refuses stray positional arguments: a typo must not be ignored.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}
