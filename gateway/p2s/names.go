package p2s

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vgate-project/vgate/gateway/config"
)

// Registered reports whether a client called name is registered.
func (s *Server) Registered(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.reg.Get(name)
	return ok
}

// CheckClient refuses what Add would refuse before any key exists: a bad
// name, no group, or a group the config does not define (for invites,
// which register the client later).
func (s *Server) CheckClient(name string, groups []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := CheckName(name); err != nil {
		return err
	}
	if len(groups) == 0 {
		return fmt.Errorf("client %q: give at least one group (%s)", name, s.groupNames())
	}
	for _, g := range groups {
		if !slices.ContainsFunc(s.cfg.Groups, func(cg config.Group) bool { return cg.Name == g }) {
			return fmt.Errorf("client %q: no group %q in point_to_site.groups (%s)", name, g, s.groupNames())
		}
	}
	return nil
}

// ClientRoutes is what a client of groups is given now: the address pool
// its addresses come from, and the AllowedIPs of its config (for an
// invite's bound, and for checking that bound when the invite is used).
func (s *Server) ClientRoutes(groups []string) (pool, routes []netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cfg.AddressPool), AllowedIPs(groupsOf(&s.cfg), groups, s.cfg.AddressPool, s.cfg.DNS)
}
