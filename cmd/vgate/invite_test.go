package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/control"
)

// inviteAPI answers the invite endpoints; everything else is not called.
type inviteAPI struct {
	control.Gateway
	got *api.InviteRequest
}

func (f inviteAPI) Invite(_ context.Context, r api.InviteRequest) (api.Invite, error) {
	*f.got = r
	return api.Invite{Name: r.Name, Groups: r.Groups, Token: "vgate-invite1.TOKEN", URL: "https://198.18.0.1:8443/", Pin: "sha256:ab", Expires: time.Now().Add(time.Hour)}, nil
}
func (f inviteAPI) Invites(context.Context) ([]api.InviteInfo, error) {
	return []api.InviteInfo{{Name: "erin", Groups: []string{"devs"}, State: "pending", Expires: time.Now()}, {Name: "old", State: "used"}}, nil
}
func (f inviteAPI) Clients(context.Context) ([]api.ClientInfo, error) { return nil, nil }
func (f inviteAPI) RevokeClient(_ context.Context, name string) (api.ClientInfo, error) {
	return api.ClientInfo{}, api.WithCode(api.CodeNotFound, fmt.Errorf("no client %q", name))
}
func (f inviteAPI) RevokeInvite(_ context.Context, name string) (api.InviteInfo, error) {
	if name != "erin" {
		return api.InviteInfo{}, api.WithCode(api.CodeNotFound, fmt.Errorf("no pending invite %q", name))
	}
	return api.InviteInfo{Name: name, State: "revoked"}, nil
}

func TestInviteCommands(t *testing.T) {
	var got api.InviteRequest
	sock := filepath.Join(t.TempDir(), "vgate.sock")
	srv, err := control.Listen(sock, control.Handler(inviteAPI{got: &got}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	code, out, errOut := vgate(t, "", "client", "invite", "erin", "--group", "devs", "--expires", "2h", "--socket", sock)
	if code != 0 || got.Expires != 2*time.Hour || got.Name != "erin" || !strings.Contains(out, "vgate connect --invite vgate-invite1.TOKEN") || strings.Contains(out, "█") {
		t.Fatalf("client invite: %d %+v %s\n%s", code, got, errOut, out)
	}
	code, out, errOut = vgate(t, "", "client", "add", "erin", "--group", "devs", "--invite", "--socket", sock)
	if code != 0 || got.Expires != 0 || !strings.Contains(out, "█") || !strings.Contains(out, "vgate-invite1.TOKEN") {
		t.Fatalf("client add --invite: %d %s\n%s", code, errOut, out)
	}
	code, out, _ = vgate(t, "", "client", "list", "--socket", sock)
	if code != 0 || !strings.Contains(out, "INVITE") || !strings.Contains(out, "erin") || strings.Contains(out, "old") {
		t.Fatalf("client list shows pending invites only:\n%s", out)
	}
	// EXPIRES names its time zone.
	if zone, _ := time.Now().Zone(); !regexp.MustCompile(`erin .* \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ` + regexp.QuoteMeta(zone)).MatchString(out) {
		t.Errorf("EXPIRES lacks the time zone %s:\n%s", zone, out)
	}
	code, out, _ = vgate(t, "", "client", "revoke", "erin", "--socket", sock)
	if code != 0 || !strings.Contains(out, "invite erin revoked") {
		t.Fatalf("client revoke of an invite: %d %s", code, out)
	}
	code, out, _ = vgate(t, "", "client", "invite", "--revoke", "erin", "--socket", sock)
	if code != 0 || !strings.Contains(out, "invite erin revoked") {
		t.Fatalf("client invite --revoke: %d %s", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"client", "revoke", "nobody"}, 1, `no client "nobody"`},
		{[]string{"client", "invite", "--revoke", "nobody"}, 1, `no pending invite "nobody"`},
		{[]string{"client", "add", "x", "--group", "devs", "--invite", "--public-key", "k"}, 2, "excludes"},
		{[]string{"client", "add", "x", "--group", "devs", "--expires", "1h"}, 2, "--expires is for --invite"},
		{[]string{"client", "invite", "x", "--expires", "-1h"}, 2, "must be positive"},
	} {
		code, _, errOut := vgate(t, "", append(tc.args, "--socket", sock)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: code %d, stderr %q; want %d, %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
