package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/control"
)

// drainAPI drains in steps: Drain answers draining, and Status says
// drained from the second call on.
type drainAPI struct {
	control.Gateway
	mu       sync.Mutex
	asked    []bool
	statuses int
}

func (f *drainAPI) Drain(_ context.Context, r api.DrainRequest) (api.DrainStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, r.Drain)
	if !r.Drain {
		return api.DrainStatus{}, nil
	}
	return api.DrainStatus{State: api.Draining, Waiting: []string{"east"}}, nil
}

func (f *drainAPI) Status(context.Context) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses++
	d := &api.DrainStatus{State: api.Draining, Waiting: []string{"east"}}
	if f.statuses > 1 {
		d = &api.DrainStatus{State: api.Drained}
	}
	return api.Status{Name: "west-a", Drain: d}, nil
}

func TestDrainCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vgate.sock")
	fake := &drainAPI{}
	srv, err := control.Listen(sock, control.Handler(fake))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	code, out, errOut := vgate(t, "", "drain", "--socket", sock)
	if code != 0 || !strings.Contains(out, "draining: waiting for east") {
		t.Fatalf("drain: %d %q %s", code, out, errOut)
	}
	code, out, errOut = vgate(t, "", "drain", "--socket", sock, "--wait", "10s", "--json")
	var st api.DrainStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.State != api.Drained {
		t.Fatalf("drain --wait: %d %q %s", code, out, errOut)
	}
	code, out, _ = vgate(t, "", "drain", "--undo", "--socket", sock)
	if code != 0 || !strings.Contains(out, "not draining") {
		t.Fatalf("drain --undo: %d %q", code, out)
	}
	if code, _, errOut := vgate(t, "", "drain", "--undo", "--wait", "1s", "--socket", sock); code != 2 || !strings.Contains(errOut, "--wait") {
		t.Fatalf("drain --undo --wait: %d %s", code, errOut)
	}
	if want := []bool{true, true, false}; len(fake.asked) != 3 || fake.asked[0] != want[0] || fake.asked[2] != want[2] {
		t.Fatalf("requests %v, want %v", fake.asked, want)
	}
}
