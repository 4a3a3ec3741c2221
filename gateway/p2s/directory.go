package p2s

import (
	"net/netip"
	"strings"
)

// Directory is an immutable snapshot of the registered clients' names and
// the group policy, published with every policy change (Server.publish),
// so that the gateway's name server (gateway/names) answers from the same
// state the filter enforces: a revoked client is gone from both at once.
type Directory struct {
	byLabel map[string][]netip.Addr // nil entry: two clients share the label
	policy  *Policy
}

// DNSLabel is the name a client has in the gateway's DNS zone: its name
// in lower case, if that is a host name (labels of a-z, 0-9 and '-', not
// starting or ending with '-', separated by dots). Names with '_' or '@'
// have no DNS name.
func DNSLabel(name string) (string, bool) {
	name = strings.ToLower(name)
	if name == "" || len(name) > 253 {
		return "", false
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false
		}
		for _, r := range l {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return "", false
			}
		}
	}
	return name, true
}

// NewDirectory indexes clients by DNS label. Two clients whose names
// differ only in case share a label: neither is answered (ambiguous).
func NewDirectory(clients []Client, policy *Policy) *Directory {
	d := &Directory{byLabel: make(map[string][]netip.Addr, len(clients)), policy: policy}
	for _, c := range clients {
		l, ok := DNSLabel(c.Name)
		if !ok {
			continue
		}
		if _, dup := d.byLabel[l]; dup {
			d.byLabel[l] = nil
			continue
		}
		d.byLabel[l] = c.Addresses
	}
	return d
}

// Lookup returns the addresses of the client whose DNS label is label
// (lower case), or nil.
func (d *Directory) Lookup(label string) []netip.Addr { return d.byLabel[label] }

// IsClient reports whether a is a registered client's address.
func (d *Directory) IsClient(a netip.Addr) bool {
	return d.policy != nil && d.policy.members[a.Unmap()] != nil
}

// Reach reports whether the group policy lets the client at src send to
// dst (without a transport header: the gateway's own services do not
// count). src must be a client's address.
func (d *Directory) Reach(src, dst netip.Addr) bool {
	return d.policy != nil && d.policy.Decide(src.Unmap(), dst.Unmap()) == Allow
}

// publish compiles the policy, hands it to the filter and publishes the
// matching directory (s.mu held, or during Open).
func (s *Server) publish() {
	p := s.policy()
	var clients []Client
	for _, c := range s.reg.Clients() {
		if s.usable(c) {
			clients = append(clients, c)
		}
	}
	s.dir.Store(NewDirectory(clients, p))
	s.filter.SetPolicy(p)
	if s.o.OnClients != nil {
		s.o.OnClients(s.reg.Clients())
	}
}

// Directory is the current name directory (never nil once Open returned).
func (s *Server) Directory() *Directory { return s.dir.Load() }
