package laptop

import (
	"strings"
	"testing"
)

func TestPlanResolver(t *testing.T) {
	ok := ResolverEnv{Resolvectl: "/usr/bin/resolvectl", ResolvedRunning: true}
	dnsList := []string{"10.1.255.254", "east.internal."}
	tests := []struct {
		name    string
		mode    DNSMode
		list    []string
		env     ResolverEnv
		set     string // commands joined by "; "
		restore string
		msg     string // substring of Message
	}{
		{"resolvectl", DNSAuto, dnsList, ok,
			"/usr/bin/resolvectl dns vgate0 10.1.255.254; /usr/bin/resolvectl domain vgate0 east.internal",
			"/usr/bin/resolvectl revert vgate0", "reverted on exit"},
		{"servers only", DNSAuto, []string{"10.1.0.53", "fd00::53"}, ok, "/usr/bin/resolvectl dns vgate0 10.1.0.53 fd00::53", "/usr/bin/resolvectl revert vgate0", "search -"},
		{"no resolvectl", DNSAuto, dnsList, ResolverEnv{ResolvedRunning: true}, "", "", "resolvectl is not installed); point your resolver at them, e.g. resolvectl dns vgate0 10.1.255.254; resolvectl domain vgate0 east.internal"},
		{"resolved not running", DNSAuto, dnsList, ResolverEnv{Resolvectl: "/usr/bin/resolvectl"}, "", "", "systemd-resolved is not running"},
		{"own namespace", DNSAuto, dnsList, ResolverEnv{Resolvectl: "/usr/bin/resolvectl", ResolvedRunning: true, OwnNetNS: true}, "", "", "own network namespace"},
		{"print", DNSPrint, dnsList, ok, "", "", "--dns print"},
		{"off", DNSOff, dnsList, ok, "", "", ""},
		{"no DNS in the config", DNSAuto, nil, ok, "", "", ""},
		{"search domains without servers", DNSAuto, []string{"east.internal"}, ok, "", "", ""},
	}
	join := func(cmds [][]string) string {
		var s []string
		for _, c := range cmds {
			s = append(s, strings.Join(c, " "))
		}
		return strings.Join(s, "; ")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PlanResolver(tt.mode, "vgate0", tt.list, tt.env)
			if got := join(p.Set); got != tt.set {
				t.Errorf("set %q, want %q", got, tt.set)
			}
			if got := join(p.Restore); got != tt.restore {
				t.Errorf("restore %q, want %q", got, tt.restore)
			}
			if !strings.Contains(p.Message, tt.msg) || (tt.msg == "" && p.Message != "") {
				t.Errorf("message %q, want it to contain %q", p.Message, tt.msg)
			}
		})
	}
}
