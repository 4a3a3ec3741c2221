// Package peering owns declared peerings on their way to becoming tunnels:
// admission (the tunnel limit of invariant 1) and, as it grows, the
// per-peering state machine and status. It is transport-independent and
// imports no other vgate package; callers hand it standard types.
package peering

import (
	"fmt"
	"strings"
	"time"
)

// HardLimit is the most tunnels a gateway may ever run; max_tunnels can
// only lower it.
const HardLimit = 10

// LimitError reports peerings refused by the tunnel limit.
type LimitError struct {
	Max      int      // the max_tunnels in force
	Declared int      // how many peerings were declared
	Refused  []string // names of the refused peerings, in declaration order
}

func (e *LimitError) Error() string {
	quoted := make([]string, len(e.Refused))
	for i, n := range e.Refused {
		quoted[i] = fmt.Sprintf("peering %q", n)
	}
	return fmt.Sprintf("tunnel limit: max_tunnels is %d and %d peerings are declared; refused: %s",
		e.Max, e.Declared, strings.Join(quoted, ", "))
}

// CheckLimit admits the first maxTunnels of the declared peering names. It
// returns a *LimitError naming the limit and every refused peering (those
// past the limit, in declaration order) when there are more, and an error
// when maxTunnels is outside 1..HardLimit.
func CheckLimit(maxTunnels int, names []string) error {
	if maxTunnels < 1 || maxTunnels > HardLimit {
		return fmt.Errorf("tunnel limit: max_tunnels must be between 1 and %d, got %d", HardLimit, maxTunnels)
	}
	if len(names) <= maxTunnels {
		return nil
	}
	return &LimitError{Max: maxTunnels, Declared: len(names), Refused: append([]string(nil), names[maxTunnels:]...)}
}

// State is a peering's tunnel state as status and metrics show it.
type State string

const (
	// StateDown: configured, but no handshake has completed yet.
	StateDown State = "down"
	// StateUp: the last handshake is at most StaleAfter old.
	StateUp State = "up"
	// StateStale: the last handshake is older than StaleAfter.
	StateStale State = "stale"
)

// StaleAfter is the handshake age past which a tunnel is stale: WireGuard
// rekeys every 120 s, so a live tunnel with traffic never gets this old.
const StaleAfter = 180 * time.Second

// StateFor derives the state from the last handshake time: zero → down,
// age ≤ StaleAfter → up (a handshake in the future, i.e. clock skew,
// counts as up), older → stale.
func StateFor(lastHandshake, now time.Time) State {
	switch {
	case lastHandshake.IsZero():
		return StateDown
	case now.Sub(lastHandshake) <= StaleAfter:
		return StateUp
	default:
		return StateStale
	}
}
