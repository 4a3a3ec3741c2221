package peering

import (
	"errors"
	"fmt"
	"strings"
)

// HardLimit is the most tunnels a gateway may ever run; max_tunnels can
// only lower it.
const HardLimit = 10

// ErrTunnelLimit is what every tunnel-limit refusal matches with errors.Is,
// whether max_tunnels is out of range or more peerings are declared.
var ErrTunnelLimit = errors.New("tunnel limit")

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

// Is makes errors.Is(err, ErrTunnelLimit) true for a *LimitError.
func (e *LimitError) Is(target error) bool { return target == ErrTunnelLimit }

// RangeError is a max_tunnels outside 1..HardLimit.
type RangeError struct{ MaxTunnels int }

func (e *RangeError) Error() string {
	return fmt.Sprintf("tunnel limit: max_tunnels must be between 1 and %d, got %d", HardLimit, e.MaxTunnels)
}

// Is makes errors.Is(err, ErrTunnelLimit) true for a *RangeError.
func (e *RangeError) Is(target error) bool { return target == ErrTunnelLimit }

// CheckLimit admits the first maxTunnels of the declared peering names. It
// returns a *LimitError naming the limit and every refused peering (those
// past the limit, in declaration order) when there are more, and an error
// (*RangeError) when maxTunnels is outside 1..HardLimit. Config validation
// calls it for both checks, so this is the only place the limit lives.
func CheckLimit(maxTunnels int, names []string) error {
	if maxTunnels < 1 || maxTunnels > HardLimit {
		return &RangeError{MaxTunnels: maxTunnels}
	}
	if len(names) <= maxTunnels {
		return nil
	}
	return &LimitError{Max: maxTunnels, Declared: len(names), Refused: append([]string(nil), names[maxTunnels:]...)}
}
