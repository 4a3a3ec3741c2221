package routing

import "testing"

// TestHoldCode: the code of vgate's holds on a session, max-prefix first,
// then the probe, then BFD.
func TestHoldCode(t *testing.T) {
	for _, c := range []struct {
		holds map[string]string
		want  DownCode
	}{
		{nil, DownNone},
		{map[string]string{HoldBFD: "bfd_down: control_detection_time_expired"}, DownBFD},
		{map[string]string{HoldBFD: "x", HoldProbe: "y"}, DownProbe},
		{map[string]string{HoldBFD: "x", holdMaxPrefix: "y"}, DownMaxPrefix},
		{map[string]string{"other": "x"}, DownAdmin},
	} {
		if got := holdCode(c.holds); got != c.want {
			t.Errorf("holdCode(%v) = %q, want %q", c.holds, got, c.want)
		}
	}
}
