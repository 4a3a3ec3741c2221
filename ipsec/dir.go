package ipsec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// charon's directory holds its config, vgate's record of its PID and the
// VICI and error-notify sockets vgate drives it through: whoever can
// replace a file there can make vgate write through a link, signal another
// charon, or stand in for charon on VICI. So the directory must be vgate's
// alone: a real directory (not a symlink) owned by vgate's user that no
// other user can write, in parents no other user can rename it out of
// (each owned by root or vgate's user, and not writable by others unless
// sticky, as /tmp). vgate writes there only through the directory's file
// descriptor, never following a symlink, and replaces files by rename, so
// a planted hard link is replaced, not written through.

// ErrUnsafeDir: charon's directory, or one of its parents, could be
// changed by another user (errors.Is).
var ErrUnsafeDir = errors.New("another user could change charon's files")

// DirError says which directory is unsafe and why: charon's directory
// (Dir) itself or one of its parents (Path).
type DirError struct {
	Dir   string      // charon's directory
	Path  string      // the directory at fault: Dir or a parent
	Owner uint32      // its owner's uid
	Mode  fs.FileMode // its type and permissions
	Why   string
}

func (e *DirError) Error() string {
	what := "charon directory " + e.Path
	if e.Path != e.Dir {
		what = "charon directory " + e.Dir + ": its parent " + e.Path
	}
	return fmt.Sprintf("%s (owner uid %d, mode %v) %s: %s; vgate (uid %d) keeps charon's config and control sockets there, so charon's directory must be owned by vgate's user, and neither it nor a parent writable by another user (choose another control_socket directory, or chown/chmod it)",
		what, e.Owner, e.Mode, e.Why, ErrUnsafeDir, os.Geteuid())
}

func (e *DirError) Unwrap() error { return ErrUnsafeDir }

// privateDir is charon's directory, opened (O_NOFOLLOW) after the checks
// above; files in it are reached relative to it.
type privateDir struct {
	path string
	f    *os.File
}

// openPrivateDir creates dir (0700, its parents 0755) if it is missing,
// checks it and its parents, and opens it.
func openPrivateDir(dir string) (*privateDir, error) {
	dir = filepath.Clean(dir)
	if !filepath.IsAbs(dir) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("charon directory %s: %w", dir, err)
		}
		dir = abs
	}
	// The control socket's directory, made as control.Listen makes it.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("charon directory %s: %w", dir, err)
	}
	if err := checkParents(dir, filepath.Dir(dir)); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("charon directory %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			fi, lerr := os.Lstat(dir)
			if lerr == nil {
				return nil, dirError(dir, dir, fi, "is not a directory (a symlink or another file)")
			}
		}
		return nil, fmt.Errorf("charon directory %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("charon directory %s: %w", dir, err)
	}
	uid := uint32(os.Geteuid())
	switch st := fi.Sys().(*syscall.Stat_t); {
	case st.Uid != uid:
		f.Close()
		return nil, dirError(dir, dir, fi, "is owned by another user")
	case fi.Mode().Perm()&0o022 != 0:
		f.Close()
		return nil, dirError(dir, dir, fi, "is writable by group or others")
	}
	return &privateDir{path: dir, f: f}, nil
}

// checkParents checks that no other user can rename entries in dir or in
// any directory above it (parents of charon's directory top).
func checkParents(top, dir string) error {
	uid := uint32(os.Geteuid())
	for {
		fi, err := os.Lstat(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("charon directory %s: its parent %s does not exist", top, dir)
			}
			return fmt.Errorf("charon directory %s: its parent %s: %w", top, dir, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			// A link is as safe as the directory it resolves to and
			// the one it lives in (checked next).
			target, err := filepath.EvalSymlinks(dir)
			if err != nil {
				return fmt.Errorf("charon directory %s: its parent %s: %w", top, dir, err)
			}
			if err := checkParents(top, target); err != nil {
				return err
			}
		case !fi.IsDir():
			return dirError(top, dir, fi, "is not a directory")
		case st.Uid != 0 && st.Uid != uid:
			return dirError(top, dir, fi, "is owned by another user (neither root nor vgate's)")
		case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
			return dirError(top, dir, fi, "is writable by group or others and not sticky")
		}
		up := filepath.Dir(dir)
		if up == dir {
			return nil
		}
		dir = up
	}
}

func dirError(top, path string, fi fs.FileInfo, why string) *DirError {
	var owner uint32
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner = st.Uid
	}
	return &DirError{Dir: top, Path: path, Owner: owner, Mode: fi.Mode(), Why: why}
}

// Close closes the directory.
func (d *privateDir) Close() error { return d.f.Close() }

func (d *privateDir) fd() int { return int(d.f.Fd()) }

// writeFile replaces the file name in d with data (mode 0600): it writes a
// new file (O_EXCL, O_NOFOLLOW) and renames it over name, so a symlink or
// hard link planted at name is replaced, never followed.
func (d *privateDir) writeFile(name string, data []byte) error {
	tmp := "." + name + ".tmp"
	_ = unix.Unlinkat(d.fd(), tmp, 0)
	fd, err := unix.Openat(d.fd(), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(d.path, name), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.path, tmp))
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = unix.Unlinkat(d.fd(), tmp, 0)
		return fmt.Errorf("write %s: %w", filepath.Join(d.path, name), err)
	}
	if err := unix.Renameat(d.fd(), tmp, d.fd(), name); err != nil {
		_ = unix.Unlinkat(d.fd(), tmp, 0)
		return fmt.Errorf("write %s: %w", filepath.Join(d.path, name), err)
	}
	return nil
}

// readFile reads the regular file name in d, not following a symlink;
// at most 4 KiB (vgate's files there are small).
func (d *privateDir) readFile(name string) ([]byte, error) {
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.path, name))
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", filepath.Join(d.path, name))
	}
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if err != nil {
		return nil, err
	}
	return b[:n], nil
}

// remove removes name from d if it is there (a symlink is removed, not
// followed).
func (d *privateDir) remove(name string) {
	_ = unix.Unlinkat(d.fd(), name, 0)
}

// pidFrom parses a PID file's content; 0 when it holds none.
func pidFrom(b []byte) int {
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
