package laptop

import (
	"testing"
	"time"
)

// TestAnswers runs the decision on a timeline sampled every WatchSample:
// connect, idle with probes answered, the gateway goes silent at 60 s,
// answers again at 120 s.
func TestAnswers(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var a Answers
	var rx uint64
	var hs time.Time
	silentAt, backAt := 60*time.Second, 120*time.Second
	events := map[AnswerEvent][]time.Duration{}
	probes := 0
	for d := time.Duration(0); d <= 150*time.Second; d += WatchSample {
		now := t0.Add(d)
		if d == time.Second { // the first handshake
			rx, hs = 92, now
		}
		ev, probe := a.Observe(now, rx, hs)
		if ev != NoChange {
			events[ev] = append(events[ev], d)
		}
		if probe {
			probes++
			// The gateway answers a probe unless it is silent.
			if d < silentAt || d >= backAt {
				rx += 92
				hs = now.Add(10 * time.Millisecond)
			}
		}
	}
	if got := events[Connected]; len(got) != 1 || got[0] != time.Second {
		t.Errorf("connected at %v, want once at 1s", got)
	}
	s := events[Silent]
	if len(s) != 1 || s[0] < silentAt || s[0] > silentAt+10*time.Second {
		t.Errorf("silent at %v, want once within 10 s of %v", s, silentAt)
	}
	b := events[Answering]
	if len(b) != 1 || b[0] < backAt || b[0] > backAt+ProbeEvery+WatchSample {
		t.Errorf("answering again at %v, want once soon after %v", b, backAt)
	}
	// Idle: at most one probe per ProbeEvery.
	if max := int(150*time.Second/ProbeEvery) + 1; probes > max {
		t.Errorf("%d probes in 150 s, want at most %d", probes, max)
	}
}

// Traffic from the gateway keeps it answering without probes.
func TestAnswersBusy(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var a Answers
	hs := t0
	for d := time.Duration(0); d <= time.Minute; d += WatchSample {
		ev, probe := a.Observe(t0.Add(d), uint64(d/WatchSample)*1000, hs)
		if probe || (ev != NoChange && ev != Connected) {
			t.Fatalf("at %v: event %v, probe %v with traffic flowing", d, ev, probe)
		}
	}
}

// A gateway that never answers: said once, within 10 s.
func TestAnswersNever(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var a Answers
	var got []time.Duration
	for d := time.Duration(0); d <= time.Minute; d += WatchSample {
		if ev, _ := a.Observe(t0.Add(d), 0, time.Time{}); ev == Silent {
			got = append(got, d)
		}
	}
	if len(got) != 1 || got[0] > 10*time.Second || a.EverConnected() {
		t.Errorf("silent at %v, want once within 10 s", got)
	}
}
