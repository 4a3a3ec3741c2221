package laptop

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// DNSMode says how `vgate connect` sets the laptop's resolver.
type DNSMode string

const (
	// DNSAuto uses resolvectl (systemd-resolved) where it can, else
	// prints what to set.
	DNSAuto DNSMode = "auto"
	// DNSPrint only prints what to set.
	DNSPrint DNSMode = "print"
	// DNSOff does neither.
	DNSOff DNSMode = "off"
)

// SplitDNS splits a wg-quick DNS list into server addresses and search
// domains (wg-quick's rule: entries that are not IP addresses are search
// domains).
func SplitDNS(list []string) (servers []netip.Addr, domains []string) {
	for _, e := range list {
		if a, err := netip.ParseAddr(e); err == nil {
			servers = append(servers, a)
		} else {
			domains = append(domains, strings.TrimSuffix(e, "."))
		}
	}
	return servers, domains
}

// ResolverEnv is what decides how the resolver can be set.
type ResolverEnv struct {
	// Resolvectl is the resolvectl binary's path ("" if not installed).
	Resolvectl string
	// ResolvedRunning: systemd-resolved's runtime directory exists.
	ResolvedRunning bool
	// OwnNetNS: this process runs in another network namespace than PID
	// 1 (a container or test namespace), where the host's resolved would
	// take our interface index for one of its own.
	OwnNetNS bool
}

// ResolverPlan is what ConfigureDNS does: commands to run now and on
// exit, or a message telling the user what to set.
type ResolverPlan struct {
	Set, Restore [][]string
	Message      string
}

// PlanResolver decides how to point the resolver at the tunnel's DNS
// servers and search domains for interface ifname.
func PlanResolver(mode DNSMode, ifname string, dnsList []string, env ResolverEnv) ResolverPlan {
	servers, domains := SplitDNS(dnsList)
	if len(servers) == 0 || mode == DNSOff {
		return ResolverPlan{}
	}
	addrs := make([]string, len(servers))
	for i, a := range servers {
		addrs[i] = a.String()
	}
	manual := fmt.Sprintf("resolvectl dns %s %s", ifname, strings.Join(addrs, " "))
	if len(domains) > 0 {
		manual += fmt.Sprintf("; resolvectl domain %s %s", ifname, strings.Join(domains, " "))
	}
	why := ""
	switch {
	case mode == DNSPrint:
		why = "--dns print"
	case env.Resolvectl == "":
		why = "resolvectl is not installed"
	case !env.ResolvedRunning:
		why = "systemd-resolved is not running"
	case env.OwnNetNS:
		why = "this runs in its own network namespace, systemd-resolved in another"
	}
	if why != "" {
		msg := fmt.Sprintf("DNS servers %s (search %s) are not set by vgate (%s); point your resolver at them, e.g. %s, or nameserver %s in /etc/resolv.conf",
			strings.Join(addrs, ", "), orDash(domains), why, manual, addrs[0])
		return ResolverPlan{Message: msg}
	}
	p := ResolverPlan{Set: [][]string{append([]string{env.Resolvectl, "dns", ifname}, addrs...)}}
	if len(domains) > 0 {
		p.Set = append(p.Set, append([]string{env.Resolvectl, "domain", ifname}, domains...))
	}
	p.Restore = [][]string{{env.Resolvectl, "revert", ifname}}
	p.Message = fmt.Sprintf("DNS servers %s, search %s set on %s with resolvectl (reverted on exit)", strings.Join(addrs, ", "), orDash(domains), ifname)
	return p
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, " ")
}

// CurrentResolverEnv looks at this machine.
func CurrentResolverEnv() ResolverEnv {
	var env ResolverEnv
	env.Resolvectl, _ = exec.LookPath("resolvectl")
	if fi, err := os.Stat("/run/systemd/resolve"); err == nil && fi.IsDir() {
		env.ResolvedRunning = true
	}
	self, err1 := os.Readlink("/proc/self/ns/net")
	init, err2 := os.Readlink("/proc/1/ns/net")
	env.OwnNetNS = err1 != nil || err2 != nil || self != init
	return env
}

// RunResolver runs the commands of a plan (Set or Restore); the first
// failure stops it.
func RunResolver(cmds [][]string) error {
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
