package tunaddr

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fakeKernel is lo's addresses.
type fakeKernel struct{ lo []netip.Addr }

func (k *fakeKernel) SetLocalAddress(add, remove netip.Addr) error {
	if remove.IsValid() && remove != add {
		_ = k.RemoveLocalAddress(remove)
	}
	if !slices.Contains(k.lo, add) {
		k.lo = append(k.lo, add)
	}
	return nil
}

func (k *fakeKernel) RemoveLocalAddress(a netip.Addr) error {
	k.lo = slices.DeleteFunc(k.lo, func(x netip.Addr) bool { return x == a })
	return nil
}

// A run killed while replacing its address leaves both on record; the
// next start removes the one being replaced and replaces the other; a
// stop removes the address and the record.
func TestRecoverSetForget(t *testing.T) {
	dir := t.TempDir()
	a1, a2, a3 := netip.MustParseAddr("169.254.10.1"), netip.MustParseAddr("169.254.10.9"), netip.MustParseAddr("169.254.10.3")
	log := slog.New(slog.DiscardHandler)
	k := &fakeKernel{lo: []netip.Addr{a1, a2}}
	if err := write(dir, record{TunnelAddress: a2, Previous: a1}); err != nil { // killed mid-change
		t.Fatal(err)
	}
	a := Recover(dir, a3, k, log)
	if slices.Contains(k.lo, a1) || a.Get() != a2 {
		t.Fatalf("after recover: lo %v, address %v; want %v gone and %v taken over", k.lo, a.Get(), a1, a2)
	}
	if err := a.Set(a3, dir); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.lo, []netip.Addr{a3}) {
		t.Fatalf("lo %v, want only %v", k.lo, a3)
	}
	k.lo = nil
	if err := a.Set(a3, dir); err != nil || k.lo != nil {
		t.Fatalf("an unchanged address was set again: lo %v %v", k.lo, err)
	}
	k.lo = []netip.Addr{a3}
	if err := a.Remove(); err != nil || len(k.lo) != 0 {
		t.Fatalf("remove: lo %v %v", k.lo, err)
	}
	if err := a.Forget(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, File)); !os.IsNotExist(err) {
		t.Fatalf("record left after a stop: %v", err)
	}
}
