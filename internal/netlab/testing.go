package netlab

import (
	"testing"
)

// SkipMessage is what NewT skips with when not root.
const SkipMessage = "lab test needs root: run as root (CI does)"

// Option configures NewT.
type Option func(*options)

type options struct {
	prefix   string
	networks int
	keepDir  bool
}

// Networks makes NewT add networks 1..n.
func Networks(n int) Option { return func(o *options) { o.networks = n } }

// Prefix sets the namespace prefix (default: NewPrefix()).
func Prefix(p string) Option { return func(o *options) { o.prefix = p } }

// KeepFiles keeps the lab's scratch directory (logs, configs) after the test.
func KeepFiles() Option { return func(o *options) { o.keepDir = true } }

// NewT makes a lab for a test. It skips the test, loudly, when not root, and
// fails it when the lab cannot be built. Cleanup stops the lab's processes and
// deletes its namespaces; when the test failed it first logs the tail of
// every process log.
func NewT(t testing.TB, opts ...Option) *Lab {
	t.Helper()
	if !Root() {
		t.Skip(SkipMessage)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	l, err := New(o.prefix)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	l.KeepDir = o.keepDir
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range l.Procs() {
				t.Logf("netlab: %s pid %d %v, log %s:\n%s", p.NS, p.Pid(), p.Args, p.LogPath, p.LogTail(40))
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("netlab: close %s: %v", l.Prefix, err)
		}
		if l.KeepDir {
			t.Logf("netlab: kept %s", l.Dir)
		}
	})
	t.Logf("netlab: lab %s, dir %s", l.Prefix, l.Dir)
	if _, err := l.AddNetworks(o.networks); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return l
}
