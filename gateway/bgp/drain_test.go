package bgp

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/routing"
)

func TestDrainStatus(t *testing.T) {
	on := drainState{on: true, since: time.Unix(100, 0)}
	est := func(names ...string) map[string]routing.NeighborStatus {
		m := map[string]routing.NeighborStatus{"down": {Name: "down", State: "active"}}
		for _, n := range names {
			m[n] = routing.NeighborStatus{Name: n, State: api.SessionEstablished}
		}
		return m
	}
	probes := []api.ProbeStatus{
		{Peering: "west-a", Vgate: true, Avoids: true},
		{Peering: "west-b", Vgate: true},
		{Peering: "frr", Plain: true},
		{Peering: "down", Vgate: true},
	}
	tests := []struct {
		name      string
		d         drainState
		announced bool
		sessions  map[string]routing.NeighborStatus
		state     api.DrainState
		waiting   []string
	}{
		{"not draining", drainState{}, false, est("west-a"), api.DrainOff, nil},
		{"not announced yet: every established session waits", on, false, est("west-a", "frr"), api.Draining, []string{"frr", "west-a"}},
		{"a vgate peer that has not moved waits; a router does not", on, true, est("west-a", "west-b", "frr"), api.Draining, []string{"west-b"}},
		{"every vgate peer moved", on, true, est("west-a", "frr"), api.Drained, nil},
		{"no session established", on, true, est(), api.Drained, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := drainStatus(tt.d, tt.announced, tt.sessions, probes)
			if tt.state == api.DrainOff {
				if st != nil {
					t.Fatalf("status %+v, want none", st)
				}
				return
			}
			if st == nil || st.State != tt.state || !slices.Equal(st.Waiting, tt.waiting) || !st.Since.Equal(tt.d.since) {
				t.Fatalf("status %+v, want %s waiting for %v", st, tt.state, tt.waiting)
			}
		})
	}
}

// A reload drains or undrains when bgp.drain changes; a drain recorded by
// vgate drain outlives a reload that turns bgp.drain off, and a restart.
func TestDrainReloadAndRestart(t *testing.T) {
	now := time.Unix(200, 0)
	cfgOf := func(drain bool) *config.Config {
		return &config.Config{BGP: &config.BGP{ASN: 65001, Drain: drain}, StateDir: t.TempDir()}
	}
	off, on := cfgOf(false), cfgOf(true)
	if d := (drainState{}).reloaded(off, on, now); !d.on || !d.since.Equal(now) {
		t.Errorf("bgp.drain turned on: %+v", d)
	}
	if d := (drainState{on: true}).reloaded(on, off, now); d.on {
		t.Errorf("bgp.drain turned off: still draining")
	}
	if d := (drainState{on: true, persisted: true}).reloaded(on, off, now); !d.on {
		t.Errorf("bgp.drain turned off: the recorded drain ended")
	}
	if d := (drainState{}).reloaded(on, on, now); d.on {
		t.Errorf("unchanged bgp.drain after vgate drain --undo drained again")
	}
	if d := (drainState{on: true}).reloaded(on, &config.Config{}, now); d.on {
		t.Errorf("bgp removed: still draining")
	}

	log := slog.New(slog.DiscardHandler)
	cfg := cfgOf(false)
	if d := loadDrain(cfg, log); d.on {
		t.Fatal("drained at start without a reason")
	}
	rec := drainState{on: true, since: now, persisted: true}
	if err := recordDrain(cfg, rec); err != nil {
		t.Fatal(err)
	}
	if d := loadDrain(cfg, log); !d.on || !d.persisted || !d.since.Equal(now) {
		t.Fatalf("after a recorded drain: %+v", d)
	}
	if err := recordDrain(cfg, drainState{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, drainFile)); !os.IsNotExist(err) {
		t.Fatalf("undo left the record: %v", err)
	}
	if d := loadDrain(cfgOf(true), log); !d.on || d.persisted {
		t.Fatalf("bgp.drain: %+v", d)
	}
}
