package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Protocols a gateway service names.
const (
	ProtoICMP = "icmp" // ICMP on IPv4, ICMPv6 on IPv6
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
)

// ServiceSyntax is the syntax of a point_to_site group's
// gateway_services entry, for error messages.
const ServiceSyntax = "tcp/PORT, udp/PORT, tcp/FIRST-LAST, udp/FIRST-LAST or icmp"

// Service is a protocol and port range of the gateway itself that a P2S
// group opens to its members (one gateway_services entry).
type Service struct {
	// Proto is ProtoTCP, ProtoUDP or ProtoICMP.
	Proto string
	// FirstPort..LastPort is the destination port range (inclusive) of
	// tcp and udp; both 0 for icmp (every ICMP message).
	FirstPort, LastPort uint16
}

// ParseService parses one gateway_services entry: "tcp/22", "udp/53",
// "tcp/8000-8080" or "icmp". Protocol names are lower case.
func ParseService(s string) (Service, error) {
	if s == ProtoICMP {
		return Service{Proto: ProtoICMP}, nil
	}
	proto, ports, ok := strings.Cut(s, "/")
	switch {
	case proto == ProtoICMP && ok:
		return Service{}, errors.New("icmp takes no port")
	case proto != ProtoTCP && proto != ProtoUDP:
		return Service{}, fmt.Errorf("unknown protocol %q (tcp, udp or icmp, lower case)", proto)
	case !ok || ports == "":
		return Service{}, fmt.Errorf("%s needs a port, e.g. %s/22", proto, proto)
	}
	first, last, isRange := strings.Cut(ports, "-")
	lo, err := parsePort(first)
	if err != nil {
		return Service{}, err
	}
	hi := lo
	if isRange {
		if hi, err = parsePort(last); err != nil {
			return Service{}, err
		}
		if hi < lo {
			return Service{}, fmt.Errorf("port range %d-%d is empty (first port above last)", lo, hi)
		}
	}
	return Service{Proto: proto, FirstPort: lo, LastPort: hi}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || s[0] == '+' || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// String is the entry as written in the config, canonical.
func (s Service) String() string {
	switch {
	case s.Proto == ProtoICMP:
		return ProtoICMP
	case s.FirstPort == s.LastPort:
		return fmt.Sprintf("%s/%d", s.Proto, s.FirstPort)
	}
	return fmt.Sprintf("%s/%d-%d", s.Proto, s.FirstPort, s.LastPort)
}

// Services returns the group's gateway_services parsed. Entries that do
// not parse (validation refuses them) are left out: they open nothing.
func (g *Group) Services() []Service {
	var out []Service
	for _, e := range g.GatewayServices {
		if s, err := ParseService(e); err == nil {
			out = append(out, s)
		}
	}
	return out
}
