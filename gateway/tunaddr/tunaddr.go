// Package tunaddr is the gateway's tunnel address as one running part:
// the address on lo (through the kernel) and its record in
// state_dir/runtime.json, which lets a start after a crash remove what the
// crashed run left on lo. Set moves it to the plan's address, Close
// removes both.
package tunaddr

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vgate-project/vgate/gateway/statefile"
)

// File is the record in state_dir.
const File = "runtime.json"

// Kernel is what the address needs of the kernel (kernel.Kernel).
type Kernel interface {
	// SetLocalAddress puts add on lo and removes remove (if valid and
	// different).
	SetLocalAddress(add, remove netip.Addr) error
	RemoveLocalAddress(a netip.Addr) error
}

// record is what a gateway records in state_dir so that a restart after a
// crash can remove what the crashed run left in the kernel.
type record struct {
	TunnelAddress netip.Addr `json:"tunnel_address"`
	// Previous is the address being replaced while a change is in flight
	// (written before the change, cleared after): a run killed between
	// the two leaves either on lo, and the next start removes both.
	Previous netip.Addr `json:"previous,omitzero"`
}

// Address is the tunnel address on lo. It is used under the gateway's
// lock (no lock of its own).
type Address struct {
	kern     Kernel
	stateDir string
	addr     netip.Addr // on lo (or left there by a crashed run)
	recorded bool       // addr is on lo and recorded by this run
}

// Recover starts the address of a gateway with state_dir stateDir whose
// config wants want: a crashed run's address in the record is taken as
// on lo (Set replaces it), and the one it was replacing, if neither, is
// removed now.
func Recover(stateDir string, want netip.Addr, kern Kernel, log *slog.Logger) *Address {
	var prev record
	if b, err := os.ReadFile(path(stateDir)); err == nil {
		_ = json.Unmarshal(b, &prev)
	}
	if a := prev.Previous; a.IsValid() && a != want && a != prev.TunnelAddress {
		if err := kern.RemoveLocalAddress(a); err != nil {
			log.Warn("removing a tunnel address a crashed run left on lo", "address", a, "error", err)
		}
	}
	return &Address{kern: kern, stateDir: stateDir, addr: prev.TunnelAddress}
}

func path(stateDir string) string { return filepath.Join(stateDir, File) }

func write(stateDir string, r record) error {
	b, _ := json.Marshal(r)
	if err := statefile.WriteAtomic(path(stateDir), b); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	return nil
}

// Set puts want on lo (replacing the previous address) and records it in
// stateDir. An unchanged address already recorded is a no-op.
func (a *Address) Set(want netip.Addr, stateDir string) error {
	if want == a.addr && a.recorded && stateDir == a.stateDir {
		return nil
	}
	a.stateDir = stateDir
	// Both addresses are on record while lo changes: a kill in between
	// leaves nothing the next start does not remove (Recover).
	if a.addr.IsValid() && a.addr != want {
		if err := write(stateDir, record{TunnelAddress: want, Previous: a.addr}); err != nil {
			return err
		}
	}
	a.recorded = false
	if err := a.kern.SetLocalAddress(want, a.addr); err != nil {
		return err
	}
	a.addr = want
	if err := write(stateDir, record{TunnelAddress: want}); err != nil {
		return err
	}
	a.recorded = true
	return nil
}

// Get is the address on lo (invalid before the first Set of a clean
// start).
func (a *Address) Get() netip.Addr { return a.addr }

// Remove takes the address off lo.
func (a *Address) Remove() error {
	if !a.addr.IsValid() {
		return nil
	}
	return a.kern.RemoveLocalAddress(a.addr)
}

// Forget removes the record in state_dir (a stop: nothing is left on lo).
func (a *Address) Forget() error {
	if a.stateDir == "" {
		return nil
	}
	if err := os.Remove(path(a.stateDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
