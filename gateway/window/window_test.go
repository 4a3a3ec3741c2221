package window

import (
	"testing"
	"time"
)

func TestCounter(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	type obs struct {
		at    time.Duration // after t0
		total uint64
	}
	for _, tc := range []struct {
		name   string
		obs    []obs // sampled in order; Recent asked at the last
		want   uint64
		wantOK bool
	}{
		{"nothing sampled yet", nil, 0, false},
		{"from zero, young", []obs{{0, 0}, {10 * time.Second, 3}}, 3, true},
		{"first seen non-zero, young: unknown", []obs{{0, 12}, {10 * time.Second, 12}}, 0, false},
		{"old drops, none lately", func() []obs {
			var o []obs
			for s := 0; s <= 300; s++ {
				total := uint64(12)
				if s < 100 {
					total = uint64(s / 10)
				}
				o = append(o, obs{time.Duration(s) * time.Second, total})
			}
			return o
		}(), 0, true},
		{"steady 1/s", func() []obs {
			var o []obs
			for s := 0; s <= 300; s++ {
				o = append(o, obs{time.Duration(s) * time.Second, uint64(1000 + s)})
			}
			return o
		}(), 60, true},
		{"burst 30 s ago", []obs{{0, 5}, {60 * time.Second, 5}, {70 * time.Second, 5}, {100 * time.Second, 25}, {130 * time.Second, 25}}, 20, true},
		{"sparse: nothing sampled near a minute ago", []obs{{0, 5}, {300 * time.Second, 9}}, 0, false},
		{"reset (tunnel recreated)", []obs{{0, 50}, {61 * time.Second, 70}, {65 * time.Second, 2}, {70 * time.Second, 4}}, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(time.Minute, 5*time.Second)
			var now time.Time
			var total uint64
			for _, o := range tc.obs {
				now, total = t0.Add(o.at), o.total
				c.Observe(now, total)
			}
			got, ok := c.Recent(now, total)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Recent = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
			if len(c.samples) > int(time.Minute/(5*time.Second))+2 {
				t.Errorf("%d samples kept, want at most a minute's worth", len(c.samples))
			}
		})
	}
}

func TestSetForgets(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s := NewSet(time.Minute, 5*time.Second)
	s.Observe("a", t0, 0)
	s.Observe("b", t0, 0)
	if n, ok := s.Observe("a", t0.Add(time.Second), 4); n != 4 || !ok {
		t.Errorf("a: %d %v, want 4 true", n, ok)
	}
	s.Observe("a", t0.Add(3*time.Minute), 4)
	if _, ok := s.m["b"]; ok {
		t.Error("b, not observed for 3 minutes, is still kept")
	}
}
