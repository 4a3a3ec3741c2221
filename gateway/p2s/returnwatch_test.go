package p2s

import (
	"net/netip"
	"testing"
	"time"
)

func TestNextFlat(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		sent, back uint64
		at         int
		flagged    bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"sending, nothing back: flagged after the window", []step{
			{1, 0, 0, false}, {3, 0, 2, false}, {5, 0, 4, false}, {7, 0, 6, true}, {9, 0, 8, true}}},
		{"replies come back: never flagged", []step{
			{2, 2, 0, false}, {4, 4, 2, false}, {6, 6, 4, false}, {8, 8, 6, false}, {10, 10, 8, false}}},
		{"a reply ends the stretch", []step{
			{2, 0, 0, false}, {4, 0, 2, false}, {6, 0, 4, false}, {8, 0, 6, true}, {10, 0, 8, true}, {12, 1, 10, false}}},
		{"too few packets: not flagged", []step{
			{1, 0, 2, false}, {1, 0, 4, false}, {1, 0, 6, false}, {2, 0, 8, false}, {2, 0, 10, false}}},
		{"silence keeps the flag, then forgets it", []step{
			{2, 0, 0, false}, {4, 0, 2, false}, {6, 0, 4, false}, {8, 0, 8, true}, {8, 0, 20, true}, {8, 0, 40, false}}},
		{"nothing at all: never flagged", []step{
			{0, 0, 0, false}, {0, 0, 10, false}, {0, 0, 60, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := flatReturn{}
			for i, s := range tc.steps {
				st = nextFlat(st, returnSample{s.sent, s.back}, at(s.at))
				if _, got := st.flagged(at(s.at)); got != s.flagged {
					t.Fatalf("step %d (%+v): flagged %v, want %v (state %+v)", i, s, got, s.flagged, st)
				}
			}
		})
	}
}

// observe warns once when a peering becomes flagged, and the hint shows
// exactly what the last tick decided.
func TestReturnWatchWarnsOnceAndHintFollowsTick(t *testing.T) {
	var r Returns
	r.SetRoutes(map[string][]netip.Prefix{"west": {netip.MustParsePrefix("10.2.0.0/16")}})
	c := r.Counts()["west"]
	var w returnWatch
	warned := 0
	t0 := time.Unix(1000, 0)
	for i := 0; i <= 10; i++ {
		now := t0.Add(time.Duration(i) * returnTick)
		c.Sent.Add(2)
		w.observe(&r, now, func(string, time.Duration, uint64) { warned++ })
		flaggedNow := w.hint("west", "172.16.201.0/24", now, &r) != ""
		// Between ticks the hint does not change by itself.
		if later := w.hint("west", "172.16.201.0/24", now.Add(returnTick-time.Millisecond), &r) != ""; later != flaggedNow {
			t.Fatalf("tick %d: hint changed between ticks (%v -> %v)", i, flaggedNow, later)
		}
	}
	if warned != 1 {
		t.Fatalf("warned %d times, want 1", warned)
	}
	if h := w.hint("west", "172.16.201.0/24", t0.Add(10*returnTick), &r); h == "" {
		t.Fatal("no hint after 20 s of packets with none back")
	}
	// A reply clears the hint at once, before the next tick.
	c.Back.Add(1)
	if h := w.hint("west", "172.16.201.0/24", t0.Add(10*returnTick+time.Millisecond), &r); h != "" {
		t.Fatalf("a reply arrived and the hint stays until the next tick: %q", h)
	}
	w.observe(&r, t0.Add(11*returnTick), func(string, time.Duration, uint64) { warned++ })
	if h := w.hint("west", "172.16.201.0/24", t0.Add(11*returnTick), &r); h != "" || warned != 1 {
		t.Fatalf("after a reply: hint %q, warned %d", h, warned)
	}
}
