package ipsec

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A "charon" (here: sleep) whose parent still runs belongs to another
// gateway: endStale refuses and leaves it alone. One whose parent is gone
// is ended.
func TestEndStaleSparesAnotherGatewaysCharon(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	sleep, _ = filepath.EvalSymlinks(sleep)
	dir := t.TempDir()
	p := PathsIn(dir)
	d, err := openPrivateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Owned: a grandchild of this test, whose parent (sh) runs; our own
	// children count as ours (a charon this process started).
	sh := exec.Command("sh", "-c", "exec "+sleep+" 30 & echo $!; wait")
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer sh.Process.Kill()
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	gpid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("grandchild pid: %q", buf[:n])
	}
	defer syscall.Kill(gpid, syscall.SIGKILL)
	var exe string
	for end := time.Now().Add(5 * time.Second); exe != sleep && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		exe, _ = os.Readlink("/proc/" + strconv.Itoa(gpid) + "/exe") // sh until it execs sleep
	}
	if err := os.WriteFile(p.PID, []byte(strconv.Itoa(gpid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := endStale(d, p, exe, log); err == nil || !strings.Contains(err.Error(), "another running process") {
		t.Fatalf("endStale on a charon another process owns: %v, want a refusal", err)
	}
	if err := syscall.Kill(gpid, 0); err != nil {
		t.Fatalf("the owned process was ended: %v", err)
	}

	// Orphaned: its parent (sh) ends, it is re-parented.
	sh.Process.Kill()
	sh.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for parentOf(gpid) == sh.Process.Pid && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pp := parentOf(gpid); pp != 1 && pp != os.Getpid() {
		t.Skipf("orphans are re-parented to pid %d here (a subreaper), not init", pp)
	}
	if err := endStale(d, p, exe, log); err != nil {
		t.Fatalf("endStale on an orphaned charon: %v", err)
	}
	for syscall.Kill(gpid, 0) == nil && time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		syscall.Wait4(gpid, &ws, syscall.WNOHANG, nil)
		time.Sleep(10 * time.Millisecond)
	}
	if st, _ := os.ReadFile("/proc/" + strconv.Itoa(gpid) + "/stat"); len(st) > 0 && !strings.Contains(string(st), ") Z") {
		t.Fatalf("the orphaned charon still runs: %s", st)
	}
}
