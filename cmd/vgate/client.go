package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
	"rsc.io/qr"

	"github.com/vgate-project/vgate/api"
)

const clientUsage = `Usage:
  vgate client add NAME [--group G]... [--public-key KEY] [--qr] [--output FILE]
      register a point-to-site client and print its WireGuard config
      (wg-quick format, as the WireGuard apps import it); with --public-key
      the laptop keeps its own private key, otherwise the config holds a
      fresh one that the gateway does not keep
  vgate client add NAME --group G... --invite [--expires 24h]
      as client invite, and print the token as a QR code too (for phones)
  vgate client invite NAME --group G... [--expires 24h] [--qr] [--json]
      print a one-time invite token: on the laptop, 'vgate connect --invite
      TOKEN' makes its own key and enrolls (needs point_to_site.enroll)
  vgate client invite --revoke NAME
      revoke a pending invite (as client revoke NAME does)
  vgate client list [--json]
      clients with groups, address, last handshake, rx/tx, denied packets;
      then pending invites
  vgate client revoke NAME
      remove a client at once (its address returns to the pool later), or
      revoke a pending invite of that name

Each finds the gateway by --socket PATH or --config FILE (default /run/vgate/vgate.sock).
`

func cmdClient(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, clientUsage)
		return &exitError{2, nil}
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "add":
		return cmdClientAdd(rest, stdout, stderr)
	case "list", "ls":
		return cmdClientList(rest, stdout, stderr)
	case "invite":
		return cmdClientInvite(rest, stdout, stderr) // invite.go
	case "revoke", "remove", "rm":
		return cmdClientRevoke(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, clientUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "vgate client: unknown command %q\n\n%s", sub, clientUsage)
		return &exitError{2, nil}
	}
}

// stringList is a repeatable flag; each use may also hold a comma list.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*s = append(*s, f)
		}
	}
	return nil
}

// parseInterleaved parses flags that may come before or after positional
// arguments (vgate client add NAME --group G) and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// oneName parses args (flags and arguments interleaved) into fs and
// returns the one client NAME among them.
func oneName(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", &exitError{2, fmt.Errorf("%s: want exactly one client NAME, got %d arguments", fs.Name(), len(pos))}
	}
	return pos[0], nil
}

func cmdClientAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("client add", stderr)
	var groups stringList
	fs.Var(&groups, "group", "group the client belongs to (repeat, or comma-separate)")
	pub := fs.String("public-key", "", "the client's own base64 public key; its private key never leaves the laptop")
	showQR := fs.Bool("qr", false, "print the config as a QR code for the WireGuard mobile apps")
	output := fs.String("output", "", "write the config to this new file (mode 0600) instead of stdout")
	asJSON := fs.Bool("json", false, "print the registered client and its config as JSON")
	invite := fs.Bool("invite", false, "create a one-time invite instead (the device makes its own key); print the token and its QR code")
	expires := fs.Duration("expires", 0, "with --invite: how long the invite is valid (default 24h)")
	gf := addGatewayFlags(fs, stderr)
	name, err := oneName(fs, args)
	if err != nil {
		return err
	}
	if *invite {
		if *pub != "" || *output != "" {
			return &exitError{2, errors.New("client add: --invite excludes --public-key and --output (the device makes its own key)")}
		}
		return createInvite(gf, name, groups, *expires, true, *asJSON, stdout)
	}
	if *expires != 0 {
		return &exitError{2, errors.New("client add: --expires is for --invite")}
	}
	if *output != "" {
		if _, err := os.Lstat(*output); err == nil {
			return fmt.Errorf("--output %s exists; not overwriting it", *output)
		}
	}
	c, ctx, cancel, err := gf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	added, err := c.AddClient(ctx, api.AddClientRequest{Name: name, Groups: groups, PublicKey: *pub})
	if err != nil {
		return gf.explain(err)
	}
	if *output == "" && added.Client.KeyGenerated {
		if isTerminal(stdout) {
			fmt.Fprintf(stderr, "vgate: warning: client %s's config holds its private key and is shown on this terminal; use --output FILE to write it to a 0600 file instead\n", name)
		} else if mode, ok := exposedFile(stdout); ok {
			fmt.Fprintf(stderr, "vgate: warning: client %s's config holds its private key and standard output is a file of mode %04o (group or other can read it): chmod 600 it; --output FILE creates it 0600\n", name, mode)
		}
	}
	if *output != "" {
		if err := writeSecretFile(*output, added.Config); err != nil {
			return fmt.Errorf("client %s is registered, but its config could not be written: %w (revoke and add it again)", name, err)
		}
	}
	switch {
	case *asJSON:
		return printJSON(stdout, added)
	case *showQR:
		code, err := qr.Encode(added.Config, qr.L)
		if err != nil {
			return fmt.Errorf("qr code: %w", err)
		}
		fmt.Fprint(stdout, renderQR(code))
		fmt.Fprintf(stdout, "client %s: %s — scan with the WireGuard app (Add tunnel → Scan from QR code)\n", name, addrList(added.Client.Addresses))
	case *output != "":
		fmt.Fprintf(stdout, "client %s added: %s, groups %s; config written to %s\n",
			name, addrList(added.Client.Addresses), strings.Join(added.Client.Groups, ","), *output)
	default:
		fmt.Fprint(stdout, added.Config)
	}
	return nil
}

// isTerminal says whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// exposedFile says whether w is a regular file that group or other may
// read (as 'client add NAME > F' creates it under umask 022), and its mode.
func exposedFile(w io.Writer) (os.FileMode, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, false
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	perm := fi.Mode().Perm()
	return perm, perm&0o077 != 0
}

// writeSecretFile creates path with mode 0600; an existing file is not
// overwritten.
func writeSecretFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// renderQR draws code with Unicode half blocks, two modules per character
// row, light modules as blocks (dark terminals show a dark-on-light code,
// as qrencode -t utf8 does), with the 4-module quiet zone scanners need.
func renderQR(code *qr.Code) string {
	const quiet = 4
	light := func(x, y int) bool {
		if x < 0 || y < 0 || x >= code.Size || y >= code.Size {
			return true
		}
		return !code.Black(x, y)
	}
	var b strings.Builder
	for y := -quiet; y < code.Size+quiet; y += 2 {
		for x := -quiet; x < code.Size+quiet; x++ {
			top, bottom := light(x, y), light(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func cmdClientList(args []string, stdout, stderr io.Writer) error {
	return query("client list", args, stdout, stderr, clientsAndInvites, func(w io.Writer, l clientList) {
		printClients(w, l.Clients, time.Now())
		printInvites(w, l.Invites) // invite.go
	})
}

func printClients(w io.Writer, list []api.ClientInfo, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no point-to-site clients registered")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tGROUPS\tADDRESSES\tSTATE\tENDPOINT\tHANDSHAKE\tRX\tTX\tDENIED")
	for _, c := range list {
		state, hs, ep := clientState(c, now), "never", c.Endpoint
		if c.Error != "" {
			state = "error (" + c.Error + ")"
		}
		if !c.LastHandshake.IsZero() {
			hs = humanAge(now.Sub(c.LastHandshake)) + " ago"
		}
		if ep == "" {
			ep = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", c.Name, strings.Join(c.Groups, ","), addrList(c.Addresses),
			state, ep, hs, humanBytes(c.RxBytes), humanBytes(c.TxBytes), c.Denied)
	}
	tw.Flush()
}

// clientState is the STATE column: active, idle since when the client was
// last heard from, gone (with that time), or never connected.
func clientState(c api.ClientInfo, now time.Time) string {
	switch c.State {
	case api.ClientActive:
		return "active"
	case api.ClientIdle:
		return "idle since " + clock(c.LastHeard, now)
	case api.ClientGone:
		return "gone (last heard " + clock(c.LastHeard, now) + ")"
	case api.ClientNever:
		return "never connected"
	}
	if c.Connected { // a gateway without states
		return "connected"
	}
	return "idle"
}

// dateTimeZone is how the CLI writes a point in time: local date, time
// and zone ("2026-12-07 14:02:11 CET"), so that a reader on another host
// or in another zone knows which time it is.
const dateTimeZone = time.DateTime + " MST"

// clock is t in local time: the time of day if t is today, else date and
// time.
func clock(t, now time.Time) string {
	t, now = t.Local(), now.Local()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}

func cmdClientRevoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("client revoke", stderr)
	gf := addGatewayFlags(fs, stderr)
	name, err := oneName(fs, args)
	if err != nil {
		return err
	}
	c, ctx, cancel, err := gf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	ci, err := c.RevokeClient(ctx, name)
	if errors.Is(err, api.CodeNotFound) {
		// No such client: perhaps a pending invite of that name.
		if inv, ierr := c.RevokeInvite(ctx, name); ierr == nil {
			fmt.Fprintf(stdout, "invite %s revoked; its token is refused from now on\n", inv.Name)
			return nil
		}
	}
	if err != nil {
		return gf.explain(err)
	}
	fmt.Fprintf(stdout, "client %s revoked; %s quarantined until %s before reuse\n", ci.Name, addrList(ci.Addresses), ci.QuarantinedUntil.Local().Format(dateTimeZone))
	return nil
}

// p2sLine summarizes the point-to-site server for `vgate status`.
func p2sLine(st *api.P2SStatus) string {
	if st == nil {
		return ""
	}
	free := countText(uint64(st.PoolFree), st.PoolFreeExact)
	if st.PoolFree == math.MaxUint64 {
		free = "unlimited"
	}
	s := fmt.Sprintf("%d/%d clients, %d connected, pool %s free, port %d/udp, %s",
		st.Registered, st.MaxClients, st.Connected, free, st.ListenPort, deniedText(st))
	if st.Error != "" {
		s += " (" + st.Error + ")"
	}
	if r := st.Relay; r != nil {
		s += ", relay " + r.URL + " " + r.State
		if r.Error != "" {
			s += " (" + r.Error + ")"
		}
	}
	return s
}

// countText is a count for people: exact (from the _exact string of a
// count JSON cannot carry, if given) up to a million, then as a power of
// two, e.g. "~2^64" for the 2^64 − 7 free addresses of a /64 pool.
func countText(n uint64, exact string) string {
	if v, err := strconv.ParseUint(exact, 10, 64); err == nil {
		n = v
	}
	if n < 1<<20 {
		return strconv.FormatUint(n, 10)
	}
	l := math.Log2(float64(n))
	if r := math.Round(l); math.Abs(l-r) < 0.05 {
		return fmt.Sprintf("~2^%d", int(r))
	}
	return fmt.Sprintf("~2^%.1f", l)
}

// deniedText is the packets the group policy denied, with those of the
// last minute and the verdicts by reason (docs/operations.md,
// "Point-to-site verdicts"): "6 packets denied (2 in the last minute):
// destination 4, gateway_service 2".
func deniedText(st *api.P2SStatus) string {
	if st.Denied == 0 {
		return "no packets denied"
	}
	s := fmt.Sprintf("%d packets denied%s", st.Denied, lastMinute(st.DeniedLastMinute))
	var verdicts []string
	for v, n := range st.Packets {
		if v != "allow" && n > 0 {
			verdicts = append(verdicts, v)
		}
	}
	slices.SortFunc(verdicts, func(a, b string) int {
		return cmp.Or(cmp.Compare(st.Packets[b], st.Packets[a]), cmp.Compare(a, b))
	})
	for i, v := range verdicts {
		verdicts[i] = fmt.Sprintf("%s %d", v, st.Packets[v])
		if n, ok := st.PacketsLastMinute[v]; ok && n > 0 {
			verdicts[i] += fmt.Sprintf(" (%d in the last minute)", n)
		}
	}
	if len(verdicts) > 0 {
		s += ": " + strings.Join(verdicts, ", ")
	}
	return s
}

// lastMinute is " (N in the last minute)", " (none in the last minute)",
// or "" when the gateway cannot tell yet.
func lastMinute(n *uint64) string {
	switch {
	case n == nil:
		return ""
	case *n == 0:
		return " (none in the last minute)"
	}
	return fmt.Sprintf(" (%d in the last minute)", *n)
}
