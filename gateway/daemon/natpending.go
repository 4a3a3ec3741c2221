package daemon

import (
	"errors"
	"fmt"

	"github.com/vgate-project/vgate/gateway/config"
)

// errNATPending: the config has NAT rules, which this build checks (vgate
// check) but does not apply yet: the planner does not translate the
// peering's routes, AllowedIPs, BGP or names (docs/nat.md,
// "Integration"). Run with them, a gateway would route the peer's
// prefixes untranslated, so start and reload refuse them.
var errNATPending = errors.New("nat rules are checked by this build but not applied yet (docs/nat.md)")

// refuseNAT returns errNATPending for the first peering with NAT rules.
func refuseNAT(cfg *config.Config) error {
	for _, p := range cfg.Peerings {
		if !p.NATRules().Empty() {
			return fmt.Errorf("peering %q: %w; remove its nat section to run", p.Name, errNATPending)
		}
	}
	return nil
}
