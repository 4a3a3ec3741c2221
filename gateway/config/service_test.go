package config

import "testing"

func TestParseService(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Service
	}{
		{"tcp/22", Service{ProtoTCP, 22, 22}},
		{"udp/53", Service{ProtoUDP, 53, 53}},
		{"tcp/8000-8080", Service{ProtoTCP, 8000, 8080}},
		{"udp/1-65535", Service{ProtoUDP, 1, 65535}},
		{"icmp", Service{Proto: ProtoICMP}},
	} {
		got, err := ParseService(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseService(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
	for _, bad := range []string{"", "tcp", "tcp/", "TCP/22", "tcp/0", "tcp/65536", "tcp/-1", "tcp/+22", "tcp/022", "tcp/22-",
		"tcp/-22", "tcp/30-20", "tcp/1-2-3", "icmp/8", "ping", "udp/ 53", "sctp/9", "tcp/22/23", "any"} {
		if s, err := ParseService(bad); err == nil {
			t.Errorf("ParseService(%q) = %+v, want an error", bad, s)
		}
	}
}

// Entries validation refused open nothing.
func TestGroupServicesSkipsInvalid(t *testing.T) {
	g := Group{GatewayServices: []string{"tcp/22", "tcp/0", "bogus", "icmp"}}
	got := g.Services()
	if len(got) != 2 || got[0] != (Service{ProtoTCP, 22, 22}) || got[1].Proto != ProtoICMP {
		t.Fatalf("Services() = %+v", got)
	}
}
