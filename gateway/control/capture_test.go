package control

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCaptureQueryRoundTrip(t *testing.T) {
	for _, q := range []CaptureQuery{
		{Peering: "west"},
		{Peering: "west", Count: 10, Duration: 90 * time.Second, MaxBytes: 1 << 20, Snaplen: 128},
	} {
		got, err := ParseCaptureQuery(q.Values())
		if err != nil || got != q {
			t.Errorf("round trip of %+v = %+v, %v", q, got, err)
		}
	}
	for _, bad := range []string{"", "peering=w&count=-1", "peering=w&duration=soon", "peering=w&max_bytes=x", "peering=w&snaplen=-5"} {
		v, _ := url.ParseQuery(bad)
		if _, err := ParseCaptureQuery(v); err == nil || !strings.HasPrefix(err.Error(), "capture: ") {
			t.Errorf("ParseCaptureQuery(%q) = %v, want a capture: error", bad, err)
		}
	}
}
