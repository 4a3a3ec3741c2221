package ipsec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// charon's directory is refused, naming path, owner and mode, when another
// user could change what is in it: writable by group or others, a symlink,
// or inside a parent others can write (unless sticky, as /tmp).
func TestPrivateDirRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, base string) string // returns charon's dir
		why   string                                 // "" when accepted
	}{
		{"created", func(t *testing.T, base string) string { return filepath.Join(base, "charon") }, ""},
		{"existing 0700", func(t *testing.T, base string) string { return mkdir(t, base, "charon", 0o700) }, ""},
		{"existing 0755", func(t *testing.T, base string) string { return mkdir(t, base, "charon", 0o755) }, ""},
		{"group-writable", func(t *testing.T, base string) string { return mkdir(t, base, "charon", 0o770) }, "writable by group or others"},
		{"world-writable", func(t *testing.T, base string) string { return mkdir(t, base, "charon", 0o777) }, "writable by group or others"},
		{"a symlink", func(t *testing.T, base string) string {
			target := mkdir(t, base, "elsewhere", 0o700)
			link := filepath.Join(base, "charon")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, "is not a directory"},
		{"a file", func(t *testing.T, base string) string {
			p := filepath.Join(base, "charon")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is not a directory"},
		{"in a world-writable parent", func(t *testing.T, base string) string {
			return filepath.Join(mkdir(t, base, "run", 0o777), "charon")
		}, "writable by group or others and not sticky"},
		{"in a sticky world-writable parent", func(t *testing.T, base string) string {
			return filepath.Join(mkdir(t, base, "run", 0o777|os.ModeSticky), "charon")
		}, ""},
		{"under a symlinked parent", func(t *testing.T, base string) string {
			run := mkdir(t, base, "run", 0o755)
			link := filepath.Join(base, "varrun")
			if err := os.Symlink(run, link); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(link, "charon")
		}, ""},
		{"under a symlink to a world-writable directory", func(t *testing.T, base string) string {
			run := mkdir(t, base, "run", 0o777)
			link := filepath.Join(base, "varrun")
			if err := os.Symlink(run, link); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(link, "charon")
		}, "writable by group or others and not sticky"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := c.setup(t, t.TempDir())
			d, err := openPrivateDir(dir)
			if c.why == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				defer d.Close()
				fi, err := os.Lstat(dir)
				if err != nil || !fi.IsDir() {
					t.Fatalf("no directory at %s: %v", dir, err)
				}
				return
			}
			if err == nil {
				d.Close()
				t.Fatal("accepted")
			}
			var de *DirError
			if !errors.Is(err, ErrUnsafeDir) || !errors.As(err, &de) || !strings.Contains(de.Why, c.why) {
				t.Fatalf("error %v, want a DirError: %s", err, c.why)
			}
			fi, lerr := os.Lstat(de.Path)
			if lerr != nil {
				t.Fatal(lerr)
			}
			for _, want := range []string{de.Path, fmt.Sprintf("owner uid %d", os.Geteuid()), fi.Mode().String()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
}

// A directory another user owns is refused (chown needs root).
func TestPrivateDirOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: chown to another user needs root; CI runs this as root")
	}
	base := t.TempDir()
	for _, c := range []struct{ name, dir, parent string }{
		{"the directory", filepath.Join(base, "a", "charon"), filepath.Join(base, "a", "charon")},
		{"a parent", filepath.Join(base, "b", "charon"), filepath.Join(base, "b")},
	} {
		mkdir(t, filepath.Dir(c.dir), "", 0o755)
		mkdir(t, filepath.Dir(c.dir), filepath.Base(c.dir), 0o700)
		if err := os.Chown(c.parent, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		_, err := openPrivateDir(c.dir)
		var de *DirError
		if !errors.As(err, &de) || de.Owner != 4242 || de.Path != c.parent || !strings.Contains(err.Error(), "owner uid 4242") {
			t.Errorf("%s owned by uid 4242: %v, want a DirError naming %s and uid 4242", c.name, err, c.parent)
		}
	}
}

// Files in charon's directory are written and read without following a
// symlink, and written by rename, so a planted link is replaced: its
// target stays as it was.
func TestPrivateDirNoFollow(t *testing.T) {
	base := t.TempDir()
	d, err := openPrivateDir(filepath.Join(base, "charon"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sym := filepath.Join(d.path, "strongswan.conf")
	if err := os.Symlink(victim, sym); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(victim, filepath.Join(d.path, "charon.pid")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.readFile("strongswan.conf"); err == nil {
		t.Error("read through a symlink")
	}
	for _, name := range []string{"strongswan.conf", "charon.pid"} {
		if err := d.writeFile(name, []byte("ours\n")); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
		fi, err := os.Lstat(filepath.Join(d.path, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s after the write: %v %v, want a regular file, mode 0600", name, fi.Mode(), err)
		}
		if b, err := d.readFile(name); err != nil || string(b) != "ours\n" {
			t.Fatalf("%s reads %q %v", name, b, err)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Fatalf("the link's target was written: %q", b)
	}
	if err := os.Symlink(victim, filepath.Join(d.path, "charon.vici")); err != nil {
		t.Fatal(err)
	}
	d.remove("charon.vici")
	if _, err := os.Lstat(filepath.Join(d.path, "charon.vici")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link not removed: %v", err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("the link's target was removed: %v", err)
	}
	if pidFrom([]byte(" 123\n")) != 123 || pidFrom([]byte("x")) != 0 || pidFrom([]byte("-5")) != 0 {
		t.Error("pidFrom")
	}
}

// mkdir makes base/name with exactly mode (no umask) and returns its path.
func mkdir(t *testing.T, base, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(base, name)
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}
