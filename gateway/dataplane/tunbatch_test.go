package dataplane

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// CreateTUN caps the read batch at MaxTUNBatch and tells the kernel the
// same limit (gso_max_segs), so no GSO packet needs more slots than the
// batch has. Needs root (a TUN in a namespace of its own).
func TestCreateTUNCapsBatchAndGSOSegs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to create a TUN in a network namespace")
	}
	name := fmt.Sprintf("vgtb%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	done := make(chan struct{})
	go func() { // a locked thread in the namespace, never returned to the pool
		defer close(done)
		runtime.LockOSThread()
		if err := netns.Set(h); err != nil {
			t.Errorf("setns: %v", err)
			return
		}
		func() {
			d, err := CreateTUN("vgtb0", 1420)
			if err != nil {
				t.Errorf("CreateTUN: %v", err)
				return
			}
			defer d.Close()
			if got := d.BatchSize(); got > MaxTUNBatch {
				t.Errorf("BatchSize() = %d, want at most %d", got, MaxTUNBatch)
			}
			out, err := exec.Command("ip", "-n", name, "-d", "link", "show", "vgtb0").CombinedOutput()
			if err != nil {
				t.Errorf("ip link: %v %s", err, out)
				return
			}
			if !strings.Contains(string(out), fmt.Sprintf("gso_max_segs %d ", MaxTUNBatch)) {
				t.Errorf("the TUN's gso_max_segs is not %d:\n%s", MaxTUNBatch, out)
			}
		}()
	}()
	<-done
}
