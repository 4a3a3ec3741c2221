package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"rsc.io/qr"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/control"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/p2s"
)

// clientAPI serves the client endpoints from a real p2s.Server (in-memory
// TUN, UDP on loopback).
type clientAPI struct {
	control.Gateway // the other methods are not called
	s               *p2s.Server
}

func (c clientAPI) AddClient(_ context.Context, r api.AddClientRequest) (api.AddedClient, error) {
	return c.s.Add(r)
}
func (c clientAPI) RevokeClient(_ context.Context, name string) (api.ClientInfo, error) {
	return c.s.Revoke(name)
}
func (c clientAPI) Clients(context.Context) ([]api.ClientInfo, error) { return c.s.Clients() }
func (c clientAPI) Invites(context.Context) ([]api.InviteInfo, error) {
	return nil, api.WithCode(api.CodeNoEnroll, errors.New("point_to_site.enroll is not configured"))
}
func (c clientAPI) RevokeInvite(_ context.Context, name string) (api.InviteInfo, error) {
	return api.InviteInfo{}, api.WithCode(api.CodeNotFound, fmt.Errorf("no pending invite %q", name))
}

func clientSocket(t *testing.T) (sock string, gw keys.PrivateKey) {
	t.Helper()
	gw, _ = keys.GeneratePrivate()
	s, err := p2s.Open(p2s.Options{
		Config: &config.PointToSite{
			Endpoint:    "vpn.example.net:51821",
			AddressPool: []netip.Prefix{netip.MustParsePrefix("172.16.201.0/24")},
			MaxClients:  10,
			Groups: []config.Group{
				{Name: "devs", Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, Interconnected: true},
				{Name: "ops", Allow: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}},
			},
		},
		PrivateKey: gw, StateDir: t.TempDir(),
		NewTUN: func(string, int) (tun.Device, error) { return tuntest.NewChannelTUN().TUN(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	sock = filepath.Join(t.TempDir(), "vgate.sock")
	srv, err := control.Listen(sock, control.Handler(clientAPI{s: s}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return sock, gw
}

func TestClientCommands(t *testing.T) {
	sock, gw := clientSocket(t)

	code, out, errOut := vgate(t, "", "client", "add", "alice", "--group", "devs", "--socket", sock)
	if code != 0 {
		t.Fatalf("client add: %d %s", code, errOut)
	}
	q, err := p2s.ParseQuick(out)
	if err != nil {
		t.Fatalf("printed config does not parse: %v\n%s", err, out)
	}
	if q.Addresses[0] != netip.MustParsePrefix("172.16.201.1/32") || q.Peers[0].PublicKey != gw.Public() ||
		q.Peers[0].Endpoint != "vpn.example.net:51821" || q.Peers[0].Keepalive != 25 {
		t.Fatalf("config: %+v\n%s", q, out)
	}

	// Flags before the name; own key; --output writes a new 0600 file.
	laptop, _ := keys.GeneratePrivate()
	file := filepath.Join(t.TempDir(), "bob.conf")
	code, out, errOut = vgate(t, "", "client", "add", "--group", "ops", "--public-key", laptop.Public().String(), "bob", "--output", file, "--socket", sock)
	if code != 0 || !strings.Contains(out, "config written to "+file) {
		t.Fatalf("client add --output: %d %s %s", code, out, errOut)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("--output file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(file)
	if strings.Contains(string(b), "\nPrivateKey") || !strings.Contains(string(b), laptop.Public().String()) || !strings.Contains(string(b), "AllowedIPs = 10.9.0.0/16\n") {
		t.Fatalf("bob's config:\n%s", b)
	}
	code, _, errOut = vgate(t, "", "client", "add", "bob2", "--group", "ops", "--output", file, "--socket", sock)
	if code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("--output over an existing file: %d %s", code, errOut)
	}

	// --qr: a QR code of the config, with its quiet zone.
	code, out, errOut = vgate(t, "", "client", "add", "carol", "--group", "devs", "--qr", "--socket", sock)
	if code != 0 || !strings.Contains(out, "█") || strings.Contains(out, "PrivateKey") {
		t.Fatalf("--qr: %d %s\n%s", code, errOut, out)
	}

	// Errors.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"client", "add", "dave", "--group", "nosuch"}, 1, "devs, ops"},
		{[]string{"client", "add", "dave"}, 1, "at least one group"},
		{[]string{"client", "add", "alice", "--group", "devs"}, 1, "already exists"},
		{[]string{"client", "add", "--group", "devs"}, 2, "exactly one client NAME"},
		{[]string{"client", "revoke", "nobody"}, 1, `no client "nobody"`},
		{[]string{"client", "frob"}, 2, "unknown command"},
	} {
		code, _, errOut := vgate(t, "", append(tc.args, "--socket", sock)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: code %d, stderr %q; want %d, %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}

	code, out, _ = vgate(t, "", "client", "list", "--socket", sock)
	if code != 0 || !strings.Contains(out, "CLIENT") || !strings.Contains(out, "alice") || !strings.Contains(out, "172.16.201.2") || !strings.Contains(out, "never") {
		t.Fatalf("client list: %d\n%s", code, out)
	}
	code, out, _ = vgate(t, "", "client", "list", "--json", "--socket", sock)
	var list []api.ClientInfo
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 3 || list[1].Name != "bob" || list[1].KeyGenerated {
		t.Fatalf("client list --json: %d %s", code, out)
	}
	code, out, errOut = vgate(t, "", "client", "revoke", "alice", "--socket", sock)
	if code != 0 || !strings.Contains(out, "alice revoked") {
		t.Fatalf("revoke: %d %s %s", code, out, errOut)
	}
	code, out, _ = vgate(t, "", "client", "list", "--socket", sock)
	if code != 0 || strings.Contains(out, "alice") {
		t.Fatalf("alice still listed:\n%s", out)
	}
}

func TestRenderQR(t *testing.T) {
	code, err := qr.Encode("[Interface]\nPrivateKey = x\n", qr.L)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(renderQR(code), "\n"), "\n")
	side := code.Size + 8
	if len(lines) != (side+1)/2 {
		t.Fatalf("%d lines for a %d-module code", len(lines), code.Size)
	}
	for i, l := range lines {
		if n := len([]rune(l)); n != side {
			t.Fatalf("line %d has %d columns, want %d", i, n, side)
		}
	}
	// Quiet zone: the first and last rows are all light.
	if strings.Trim(lines[0], "█") != "" || strings.Trim(lines[len(lines)-1], "█▀") != "" {
		t.Fatalf("no quiet zone:\n%s", strings.Join(lines, "\n"))
	}
	// Module (0,0) is dark (finder pattern) and sits under 4 light modules.
	if r := []rune(lines[2])[4]; r != '▀' && r != ' ' {
		t.Fatalf("finder pattern corner rendered as %q", r)
	}
}

func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(null) || isTerminal(&strings.Builder{}) {
		t.Error("/dev/null or a buffer taken for a terminal")
	}
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("SKIP: no pty: %v", err)
	}
	defer pty.Close()
	if !isTerminal(pty) {
		t.Error("a pty not taken for a terminal")
	}
}

// 'client add NAME > F' under umask 022 leaves the private key readable by
// others: such a stdout is noticed; a 0600 file, /dev/null and buffers are
// not.
func TestExposedFile(t *testing.T) {
	dir := t.TempDir()
	open := func(name string, mode os.FileMode) *os.File {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE, mode)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Chmod(mode); err != nil { // past the umask
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	if m, ok := exposedFile(open("open.conf", 0o644)); !ok || m != 0o644 {
		t.Errorf("0644 file: %04o, %v; want 0644, true", m, ok)
	}
	if _, ok := exposedFile(open("closed.conf", 0o600)); ok {
		t.Error("0600 file taken for exposed")
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if _, ok := exposedFile(null); ok {
		t.Error("/dev/null taken for an exposed file")
	}
	if _, ok := exposedFile(&strings.Builder{}); ok {
		t.Error("a buffer taken for an exposed file")
	}
}

// client list says what is known of each client: active, idle since the
// time it was last heard from, gone, never connected.
func TestClientListStates(t *testing.T) {
	now := time.Now()
	heard := now.Add(-time.Minute)
	var b strings.Builder
	printClients(&b, []api.ClientInfo{
		{Name: "alice", State: api.ClientActive, Connected: true, LastHeard: now, LastHandshake: now.Add(-10 * time.Second)},
		{Name: "bob", State: api.ClientIdle, LastHeard: heard, LastHandshake: heard},
		{Name: "carol", State: api.ClientGone, LastHeard: now.Add(-48 * time.Hour), LastHandshake: now.Add(-48 * time.Hour)},
		{Name: "dave", State: api.ClientNever},
	}, now)
	out := b.String()
	for name, want := range map[string]string{
		"alice": "active",
		"bob":   "idle since " + heard.Local().Format(time.TimeOnly),
		"carol": "gone (last heard " + now.Add(-48*time.Hour).Local().Format(time.DateTime) + ")",
		"dave":  "never connected",
	} {
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, name+" ") {
				line = l
			}
		}
		if !strings.Contains(line, want) {
			t.Errorf("%s: want %q in its row:\n%s", name, want, out)
		}
	}
	if strings.Contains(out, "connected ") && !strings.Contains(out, "never connected") {
		t.Errorf("a client reads as connected:\n%s", out)
	}
}
