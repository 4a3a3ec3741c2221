package daemon

import "testing"

func TestPprofListener(t *testing.T) {
	for _, tc := range []struct {
		in, network, addr string
		bad               bool
	}{
		{in: "/run/vgate/pprof.sock", network: "unix", addr: "/run/vgate/pprof.sock"},
		{in: "127.0.0.1:6060", network: "tcp", addr: "127.0.0.1:6060"},
		{in: "[::1]:6060", network: "tcp", addr: "[::1]:6060"},
		{in: "0.0.0.0:6060", bad: true},
		{in: "198.18.0.1:6060", bad: true},
		{in: ":6060", bad: true},
		{in: "pprof.sock", bad: true},
		{in: "localhost:6060", bad: true},
	} {
		n, a, err := pprofListener(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted as %s %s", tc.in, n, a)
			}
			continue
		}
		if err != nil || n != tc.network || a != tc.addr {
			t.Errorf("%q: got %s %s %v, want %s %s", tc.in, n, a, err, tc.network, tc.addr)
		}
	}
}
