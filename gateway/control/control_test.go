package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
)

// fakeGateway serves fixed answers; errors are returned as given.
type fakeGateway struct {
	st      api.Status
	err     error
	added   api.AddClientRequest
	capture []byte
}

func (f *fakeGateway) Status(context.Context) (api.Status, error) { return f.st, f.err }
func (f *fakeGateway) Drain(_ context.Context, r api.DrainRequest) (api.DrainStatus, error) {
	if !r.Drain {
		return api.DrainStatus{}, f.err
	}
	return api.DrainStatus{State: api.Draining, Waiting: []string{"west"}}, f.err
}
func (f *fakeGateway) Reload(context.Context) error {
	return api.WithCode(api.CodeReloadFailed, errors.New("peerings[0].name: missing"))
}
func (f *fakeGateway) BGP(context.Context) (api.BGPStatus, error) {
	return api.BGPStatus{Enabled: true, ASN: 65001}, nil
}
func (f *fakeGateway) Routes(context.Context) (api.RoutesView, error) { return api.RoutesView{}, nil }
func (f *fakeGateway) AddClient(_ context.Context, r api.AddClientRequest) (api.AddedClient, error) {
	f.added = r
	return api.AddedClient{Client: api.ClientInfo{Name: r.Name}, Config: "[Interface]\n"}, nil
}
func (f *fakeGateway) Clients(context.Context) ([]api.ClientInfo, error) {
	return nil, api.WithCode(api.CodeNoP2S, errors.New("point_to_site is not configured on this gateway"))
}
func (f *fakeGateway) RevokeClient(_ context.Context, name string) (api.ClientInfo, error) {
	return api.ClientInfo{}, api.WithCode(api.CodeNotFound, fmt.Errorf("no client %q", name))
}
func (f *fakeGateway) Capture(ctx context.Context, q api.CaptureQuery, w io.Writer) (api.CaptureSummary, error) {
	if q.Peering != "west" {
		return api.CaptureSummary{}, api.WithCode(api.CodeNotFound, fmt.Errorf("no peering %q is configured", q.Peering))
	}
	w.Write(f.capture)
	return api.CaptureSummary{Packets: 1, Stop: api.StopCount}, nil
}

func (f *fakeGateway) Invite(_ context.Context, r api.InviteRequest) (api.Invite, error) {
	if r.Name == "taken" {
		return api.Invite{}, api.WithCode(api.CodeConflict, errors.New("invite \"taken\": a client of this name exists"))
	}
	return api.Invite{Name: r.Name, Groups: r.Groups, Token: "vgate-invite1.x", Expires: time.Unix(0, 0).Add(r.Expires)}, nil
}
func (f *fakeGateway) Invites(context.Context) ([]api.InviteInfo, error) {
	return nil, api.WithCode(api.CodeNoEnroll, errors.New("point_to_site.enroll is not configured"))
}
func (f *fakeGateway) RevokeInvite(_ context.Context, name string) (api.InviteInfo, error) {
	return api.InviteInfo{Name: name, State: "revoked"}, nil
}

// Invites round-trip with their codes.
func TestInvites(t *testing.T) {
	c, _ := serve(t, &fakeGateway{})
	ctx := context.Background()
	inv, err := c.Invite(ctx, api.InviteRequest{Name: "erin", Groups: []string{"devs"}, Expires: time.Hour})
	if err != nil || inv.Token != "vgate-invite1.x" || !inv.Expires.Equal(time.Unix(3600, 0)) {
		t.Fatalf("Invite = %+v, %v", inv, err)
	}
	if _, err := c.Invite(ctx, api.InviteRequest{Name: "taken"}); !errors.Is(err, api.CodeConflict) {
		t.Errorf("conflict: %v", err)
	}
	if _, err := c.Invites(ctx); !errors.Is(err, api.CodeNoEnroll) {
		t.Errorf("no enroll: %v", err)
	}
	if i, err := c.RevokeInvite(ctx, "erin"); err != nil || i.State != "revoked" {
		t.Errorf("RevokeInvite = %+v, %v", i, err)
	}
	if _, err := c.RevokeInvite(ctx, ""); !errors.Is(err, api.CodeBadRequest) {
		t.Errorf("empty name: %v", err)
	}
}

func serve(t *testing.T, gw Gateway) (*Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vgate.sock")
	srv, err := Listen(sock, Handler(gw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return NewClient(sock), sock
}

func TestRoundTripAndCodes(t *testing.T) {
	ctx := context.Background()
	gw := &fakeGateway{st: api.Status{Name: "hq", Peerings: []api.PeeringStatus{{Name: "west", State: api.StateDown, Reason: api.ReasonNoHandshake}}},
		capture: []byte("pcap-bytes")}
	c, _ := serve(t, gw)

	st, err := c.Status(ctx)
	if err != nil || st.Name != "hq" || len(st.Peerings) != 1 || st.Peerings[0].Reason != api.ReasonNoHandshake {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if b, err := c.BGP(ctx); err != nil || b.ASN != 65001 {
		t.Errorf("BGP = %+v, %v", b, err)
	}
	if a, err := c.AddClient(ctx, api.AddClientRequest{Name: "alice", Groups: []string{"devs"}}); err != nil || a.Client.Name != "alice" || gw.added.Groups[0] != "devs" {
		t.Errorf("AddClient = %+v, %v (server got %+v)", a, err, gw.added)
	}
	// Errors keep their code and message across the socket.
	for _, tc := range []struct {
		err  error
		code api.ErrorCode
		msg  string
	}{
		{func() error { _, err := c.Clients(ctx); return err }(), api.CodeNoP2S, "point_to_site is not configured"},
		{func() error { _, err := c.RevokeClient(ctx, "bob"); return err }(), api.CodeNotFound, `no client "bob"`},
		{c.Reload(ctx), api.CodeReloadFailed, "peerings[0].name"},
		{func() error { _, err := c.Capture(ctx, api.CaptureQuery{Peering: "east"}); return err }(), api.CodeNotFound, `no peering "east"`},
		{func() error { _, err := c.Capture(ctx, api.CaptureQuery{}); return err }(), api.CodeBadRequest, "exactly one"},
	} {
		if !errors.Is(tc.err, tc.code) || tc.err.Error() == "" || !bytes.Contains([]byte(tc.err.Error()), []byte(tc.msg)) {
			t.Errorf("error %v: want code %s and %q in the message", tc.err, tc.code, tc.msg)
		}
	}
	gw.err = errors.New("plain failure")
	if _, err := c.Status(ctx); err == nil || api.CodeOf(err) != "" {
		t.Errorf("uncoded error = %v (code %q), want no code", err, api.CodeOf(err))
	}

	s, err := c.Capture(ctx, api.CaptureQuery{Peering: "west", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(s)
	s.Close()
	sum, ok := s.Summary()
	if string(body) != "pcap-bytes" || !ok || sum.Packets != 1 || sum.Stop != api.StopCount {
		t.Errorf("capture: body %q, summary %+v %v", body, sum, ok)
	}
}

func TestClientTransportErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := NewClient(filepath.Join(dir, "none.sock")).Status(context.Background())
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("no socket: %v, want ENOENT", err)
	}
	// A socket file nobody listens on.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := NewClient(stale).Status(context.Background()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("stale socket: %v, want ECONNREFUSED", err)
	}
}

func TestListenSocketFile(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vgate.sock")

	// A regular file at the path is refused and left alone.
	if err := os.WriteFile(sock, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock, Handler(&fakeGateway{})); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v, want a not-a-socket error", err)
	}
	if b, _ := os.ReadFile(sock); string(b) != "precious" {
		t.Fatalf("the regular file was changed: %q", b)
	}
	os.Remove(sock)

	// A dead gateway's socket is replaced.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	srv, err := Listen(sock, Handler(&fakeGateway{}))
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if s := srv.srv; s.ReadHeaderTimeout <= 0 || s.IdleTimeout <= 0 {
		t.Errorf("control server timeouts: header %v, idle %v: both must be set (a client's idle connection is closed)", s.ReadHeaderTimeout, s.IdleTimeout)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file: %v %v, want a socket with mode 0600", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries, want only the socket (the private temp dir must be gone)", len(ents))
	}
	// A live one is not, and CheckFree (vgate run, before any effect)
	// says so too.
	if _, err := Listen(sock, Handler(&fakeGateway{})); err == nil || !strings.Contains(err.Error(), "another gateway") {
		t.Errorf("second Listen: %v, want another-gateway error", err)
	}
	if err := CheckFree(sock); err == nil || !strings.Contains(err.Error(), "another gateway") {
		t.Errorf("CheckFree on a live socket: %v, want another-gateway error", err)
	}
	if err := CheckFree(filepath.Join(dir, "none.sock")); err != nil {
		t.Errorf("CheckFree on a free path: %v", err)
	}
	if _, err := NewClient(sock).Status(context.Background()); err != nil {
		t.Errorf("first server stopped answering: %v", err)
	}
	srv.Close()
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Close left the socket: %v", err)
	}
}

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		p     peer
		owner uint32
		want  bool
	}{
		{peer{uid: 0, ok: true}, 1000, true},
		{peer{uid: 1000, ok: true}, 1000, true},
		{peer{uid: 1001, ok: true}, 1000, false},
		{peer{uid: 65534, ok: true}, 0, false},
		{peer{}, 0, false}, // credentials unreadable: refused even if uid looks like root
	} {
		if got := allowed(tc.p, tc.owner); got != tc.want {
			t.Errorf("allowed(%+v, owner %d) = %v, want %v", tc.p, tc.owner, got, tc.want)
		}
	}
}

const peerHelperEnv = "VGATE_CONTROL_PEER_HELPER"

// TestPeerCredHelper is the client half of TestPeerCredRefusesOtherUsers,
// run in a subprocess as another user.
func TestPeerCredHelper(t *testing.T) {
	sock := os.Getenv(peerHelperEnv)
	if sock == "" {
		t.Skip("helper for TestPeerCredRefusesOtherUsers")
	}
	_, err := NewClient(sock).Status(context.Background())
	fmt.Printf("uid=%d code=%s err=%v\n", os.Getuid(), api.CodeOf(err), err)
}

// Even if the socket's mode lets another user connect, SO_PEERCRED keeps
// them out.
func TestPeerCredRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root to run a client as another uid")
	}
	const nobody = 65534
	dir, err := os.MkdirTemp("", "vgate-peercred-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary may sit in a root-only directory: copy it.
	bin := filepath.Join(dir, "control.test")
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "vgate.sock")
	srv, err := Listen(sock, Handler(&fakeGateway{st: api.Status{Name: "hq"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := os.Chmod(sock, 0o666); err != nil { // as if someone loosened it
		t.Fatal(err)
	}
	run := func(uid uint32) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-test.run=^TestPeerCredHelper$", "-test.v")
		cmd.Env = append(os.Environ(), peerHelperEnv+"="+sock)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as uid %d: %v\n%s", uid, err, out)
		}
		return string(out)
	}
	if out := run(nobody); !strings.Contains(out, "uid=65534 code=forbidden") {
		t.Errorf("uid %d was not refused:\n%s", nobody, out)
	}
	if out := run(0); !strings.Contains(out, "uid=0 code= err=<nil>") {
		t.Errorf("root was refused:\n%s", out)
	}
}

// Drain round-trips, and its error keeps its code.
func TestDrain(t *testing.T) {
	ctx := context.Background()
	c, _ := serve(t, &fakeGateway{})
	if st, err := c.Drain(ctx, api.DrainRequest{Drain: true}); err != nil || st.State != api.Draining || len(st.Waiting) != 1 {
		t.Fatalf("Drain = %+v, %v", st, err)
	}
	c, _ = serve(t, &fakeGateway{err: api.WithCode(api.CodeBadRequest, errors.New("drain: the gateway has no bgp section"))})
	if _, err := c.Drain(ctx, api.DrainRequest{}); !errors.Is(err, api.CodeBadRequest) || !strings.Contains(err.Error(), "no bgp section") {
		t.Fatalf("Drain without bgp: %v", err)
	}
}
