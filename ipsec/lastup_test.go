package ipsec

import (
	"context"
	"testing"
	"time"
)

// A peering that was up and then gets a new (wrong) PSK keeps the time it
// was last up, and its configured remote shows while no SA came up.
func TestLastUpKeptAcrossChange(t *testing.T) {
	d := &Daemon{peers: map[string]*peer{}, kick: make(chan struct{}, 1)}
	want := Peer{Name: "hq", Remote: "198.18.0.9", PSK: NewSecret([]byte("right"))}
	if err := d.Set(context.Background(), []Peer{want}); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.State("hq"); s.Remote != "198.18.0.9" || !s.LastUp.IsZero() || s.Endpoint != "" {
		t.Fatalf("new peering: %+v", s)
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	p := d.peers["hq"]
	p.ike, p.child, p.endpoint = "ESTABLISHED", "INSTALLED", "198.18.0.9:500"
	p.settle(t0)
	p.settle(t0.Add(time.Minute)) // still up a minute later
	p.ike, p.child = "", ""
	p.settle(t0.Add(2 * time.Minute))
	want.PSK = NewSecret([]byte("wrong"))
	if err := d.Set(context.Background(), []Peer{want}); err != nil {
		t.Fatal(err)
	}
	s, _ := d.State("hq")
	if !s.LastUp.Equal(t0.Add(time.Minute)) || s.Remote != "198.18.0.9" || s.Reason == "" {
		t.Errorf("after a PSK change: last up %v (want %v), remote %q, reason %q", s.LastUp, t0.Add(time.Minute), s.Remote, s.Reason)
	}
}
