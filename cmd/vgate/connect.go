package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/gateway/laptop"
	"github.com/vgate-project/vgate/overlap"
)

const connectUsage = `Usage: vgate connect [--interface NAME] [--relay wss://HOST/ [--relay-pin sha256:…]] FILE
       vgate connect [--interface NAME] --invite TOKEN [--output FILE]

Brings up the WireGuard client config FILE (as 'vgate client add' prints it,
wg-quick format) on this Linux machine: a wireguard-go device on a TUN
interface, the config's addresses on it and routes for its AllowedIPs.
The config's DNS servers and search domains are set with resolvectl where
systemd-resolved runs (otherwise vgate prints what to set; see --dns).
Runs in the foreground; Ctrl-C (or SIGTERM) removes everything again.
Needs root (or CAP_NET_ADMIN). With --relay, the connection falls back to
that relay (the gateway's point_to_site.relay) when UDP to the gateway does
not get through, and moves back when it does.

With --invite, the laptop enrolls first: it makes its own key pair, sends
only the public key and the token's secret to the gateway (over TLS to the
certificate the token pins), checks the config it gets back (a client name,
no wg-quick hooks, addresses and routes inside what the token allows),
saves it with its private key as a new file (--output, default
~/.config/vgate/NAME.conf, or NAME-2.conf..., mode 0600) and connects.
The token works once; next time run 'vgate connect' on the saved file.
'--invite -' reads the token from standard input, which keeps it out of the
process list while it is still unused.

`

func cmdConnect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("connect", stderr)
	ifname := fs.String("interface", "vgate0", "name of the TUN interface to create")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	invite := fs.String("invite", "", "enroll with this one-time invite token (from 'vgate client invite'), then connect; - reads it from standard input")
	output := fs.String("output", "", "with --invite: save the enrolled config here (mode 0600; default ~/.config/vgate/NAME.conf)")
	dnsMode := fs.String("dns", "auto", "set the resolver to the config's DNS: auto (resolvectl where systemd-resolved runs, else print what to set), print, off")
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
	if *invite != "" && *invite != "-" && tokenPieces(pos) {
		// A token pasted unquoted with a space inside: the shell split it.
		*invite += strings.Join(pos, "")
		pos = nil
	}
	switch {
	case *invite == "" && len(pos) != 1:
		fs.Usage()
		return &exitError{2, errors.New("connect: want exactly one config FILE (or --invite TOKEN)")}
	case *invite != "" && len(pos) != 0:
		return &exitError{2, errors.New("connect: --invite and a config FILE exclude each other")}
	case *invite == "" && *output != "":
		return &exitError{2, errors.New("connect: --output is for --invite")}
	case *relayPin != "" && *relayURL == "":
		return &exitError{2, errors.New("connect: --relay-pin needs --relay")}
	}
	mode := laptop.DNSMode(*dnsMode)
	if mode != laptop.DNSAuto && mode != laptop.DNSPrint && mode != laptop.DNSOff {
		return &exitError{2, fmt.Errorf("connect: --dns %q: want auto, print or off", *dnsMode)}
	}
	log, err := newLogger(stderr, "text", *logLevel)
	if err != nil {
		return err
	}
	var text []byte
	source := ""
	if *invite == "-" { // keeps the token out of the process list
		t, err := tokenFromInput(os.Stdin)
		if err != nil {
			return &exitError{1, fmt.Errorf("--invite -: read the token from standard input: %w", err)}
		}
		*invite = t
	}
	if err := laptop.CanConnect(); err != nil {
		if *invite != "" {
			err = fmt.Errorf("%w (nothing was sent: the invite is still unused)", err)
		}
		return &exitError{1, err}
	}
	if *invite != "" {
		t, path, err := enrollInvite(*invite, *output, stdout)
		if err != nil {
			return &exitError{1, err}
		}
		text, source = []byte(t), path
	} else {
		source = pos[0]
		text, err = os.ReadFile(source)
		if err != nil {
			return &exitError{1, err}
		}
	}
	c, err := laptop.UpOptions(string(text), *ifname, log, laptop.Options{RelayURL: *relayURL, RelayPin: *relayPin})
	if err != nil {
		return &exitError{1, fmt.Errorf("%s: %w", source, err)}
	}
	fmt.Fprintf(stdout, "vgate connect: %s up, address %s, routes %s; Ctrl-C disconnects\n",
		*ifname, cmp.Or(overlap.Join(c.Addresses), "-"), cmp.Or(overlap.Join(c.Routes), "-"))
	return runConnected(c, *ifname, mode, *relayURL != "", stdout, log)
}

// enrollInvite enrolls with token and saves the config (with the private
// key made here) to output, or to ~/.config/vgate/NAME.conf. The token and
// the directory are checked before anything is sent, so neither costs the
// invite; the answer is checked (laptop.CheckAnswer) before anything is
// saved. It returns the config and where it was saved.
func enrollInvite(token, output string, stdout io.Writer) (string, string, error) {
	tok, err := laptop.ParseInvite(token)
	if err != nil {
		return "", "", fmt.Errorf("invite: %w", err)
	}
	var dir *laptop.ConfigDir
	if output != "" {
		if _, err := os.Lstat(output); err == nil {
			return "", "", fmt.Errorf("--output %s exists; not overwriting it (the invite is not used yet)", output)
		}
		dir, err = laptop.OpenConfigDir(filepath.Dir(output), false)
	} else {
		var d string
		if d, err = laptop.DefaultConfigDir(); err == nil {
			dir, err = laptop.OpenConfigDir(d, true)
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("%w (the invite is not used yet)", err)
	}
	defer dir.Close()
	ctx, cancel := context.WithTimeout(context.Background(), laptop.EnrollTimeout)
	defer cancel()
	e, err := laptop.EnrollInvite(ctx, tok)
	if err != nil {
		return "", "", fmt.Errorf("invite: %w", err)
	}
	var path string
	if output != "" {
		path = output
		err = dir.SaveAs(filepath.Base(output), e.Config)
	} else {
		path, err = dir.Save(e.Name, e.Config)
	}
	if err != nil {
		return "", "", fmt.Errorf("enrolled as %s, but its config cannot be saved: %w (the gateway admin must revoke %s and invite again)", e.Name, err, e.Name)
	}
	fmt.Fprintf(stdout, "vgate connect: enrolled at %s as client %s; config saved to %s (next time: vgate connect %s)\n", e.URL, e.Name, path, path)
	return e.Config, path, nil
}

// runConnected sets the resolver, waits for Ctrl-C or SIGTERM, restores
// the resolver and takes the connection down.
func runConnected(c *laptop.Conn, ifname string, mode laptop.DNSMode, relay bool, stdout io.Writer, log *slog.Logger) error {
	rp := laptop.PlanResolver(mode, ifname, c.DNS, laptop.CurrentResolverEnv())
	if err := laptop.RunResolver(rp.Set); err != nil {
		log.Warn("could not set the resolver; set it yourself", "error", err)
		rp.Restore = nil
	} else if rp.Message != "" {
		fmt.Fprintf(stdout, "vgate connect: %s\n", rp.Message)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var mu sync.Mutex // the watchers print from their own goroutines
	say := func(_ laptop.AnswerEvent, msg string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, "vgate connect: %s\n", msg)
	}
	go c.Watch(ctx, say)
	if relay {
		go watchPath(ctx, c, log)
	}
	<-ctx.Done()
	// From here a second Ctrl-C or SIGTERM ends the process at once.
	stop()
	log.Info("disconnecting")
	done := make(chan error, 1)
	go func() {
		if err := laptop.RunResolver(rp.Restore); err != nil {
			log.Warn("could not restore the resolver", "error", err)
		}
		done <- c.Down()
	}()
	select {
	case err := <-done:
		if err != nil {
			return &exitError{1, err}
		}
	case <-time.After(teardownTimeout):
		return &exitError{1, fmt.Errorf("%s: taking the connection down did not finish in %v; exiting anyway (the interface goes with the process; check for leftover routes to the endpoint)", ifname, teardownTimeout)}
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(stdout, "vgate connect: %s removed\n", ifname)
	return nil
}

// teardownTimeout bounds restoring the resolver and removing the
// interface after Ctrl-C or SIGTERM, so that the process always exits.
const teardownTimeout = 5 * time.Second

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

// tokenPieces says whether the positional arguments after --invite TOKEN
// are the rest of a token the shell split at white space: base64url words
// that name no file.
func tokenPieces(pos []string) bool {
	if !allBase64URL(pos) {
		return false
	}
	for _, p := range pos {
		if _, err := os.Stat(p); err == nil {
			return false
		}
	}
	return true
}

// allBase64URL says whether words is not empty and each is base64url.
func allBase64URL(words []string) bool {
	for _, w := range words {
		if !isBase64URL(w) {
			return false
		}
	}
	return len(words) > 0
}

func isBase64URL(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// tokenFromInput is the invite token read by '--invite -': the first word
// starting with the token prefix, with the base64url words and lines that
// continue it up to a blank line (a token wrapped or pasted with a space
// inside), so the whole output of 'vgate client invite' saved to a file
// works as well as the bare token; without one, the first line (which the
// enrollment then refuses, saying why).
func tokenFromInput(r io.Reader) (string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	first, seen := "", false
	tok := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !seen {
			first, seen = line, true
		}
		words := strings.Fields(line)
		if tok != "" {
			if !allBase64URL(words) {
				return tok, nil
			}
			tok += strings.Join(words, "")
			continue
		}
		for i, w := range words {
			if strings.HasPrefix(w, laptop.InviteTokenPrefix) {
				tok = w
				for _, more := range words[i+1:] {
					if !isBase64URL(more) {
						return tok, nil
					}
					tok += more
				}
				break
			}
		}
	}
	if tok != "" {
		return tok, sc.Err()
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if !seen {
		return "", io.ErrUnexpectedEOF
	}
	return first, nil
}
