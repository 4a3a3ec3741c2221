package laptop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ConfigDir is a directory that enrolled configs are saved in. It is
// opened (and checked) before the laptop enrolls, so a directory that
// cannot take the config does not cost the invite, and every file is
// created through its descriptor with O_EXCL|O_NOFOLLOW: the config lands
// in that directory, as a new file, whatever names or links appear in the
// path meanwhile.
type ConfigDir struct {
	Path string
	fd   int
}

// DefaultConfigDir is where `vgate connect --invite` saves configs:
// ~/.config/vgate ($XDG_CONFIG_HOME/vgate).
func DefaultConfigDir() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no directory for the config (%w); give --output FILE", err)
	}
	return filepath.Join(base, "vgate"), nil
}

// OpenConfigDir opens dir for saving configs. strict is for the default
// directory: dir is made (mode 0700, with its parents) when missing; it
// must be a directory, not a symbolic link, belong to this process's user
// and not be writable by group or others (who could replace a saved
// config). Without strict (the directory of --output FILE, which the user
// named) it must only be a directory.
func OpenConfigDir(dir string, strict bool) (*ConfigDir, error) {
	var mkErr error
	if strict {
		mkErr = os.MkdirAll(dir, 0o700)
	}
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if strict {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(dir, flags, 0)
	if err != nil {
		// O_NOFOLLOW|O_DIRECTORY on a link fails with ELOOP or ENOTDIR.
		if fi, lerr := os.Lstat(dir); strict && lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(dir)
			return nil, fmt.Errorf("%s is a symbolic link (to %s): vgate saves configs only in a real directory of yours; remove the link, or give --output FILE", dir, target)
		}
		if mkErr != nil {
			return nil, fmt.Errorf("config directory %s: %w", dir, mkErr)
		}
		return nil, fmt.Errorf("config directory %s: %w", dir, err)
	}
	if strict {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("config directory %s: %w", dir, err)
		}
		if uid := uint32(os.Geteuid()); st.Uid != uid {
			unix.Close(fd)
			return nil, fmt.Errorf("config directory %s belongs to uid %d, not to this user (uid %d); give --output FILE", dir, st.Uid, uid)
		}
		if st.Mode&0o022 != 0 {
			unix.Close(fd)
			return nil, fmt.Errorf("config directory %s has mode %04o: group or others could replace a saved config; chmod go-w it, or give --output FILE", dir, st.Mode&0o7777)
		}
	}
	return &ConfigDir{Path: dir, fd: fd}, nil
}

// Close closes the directory.
func (d *ConfigDir) Close() error { return unix.Close(d.fd) }

// maxSaveTries is how many names Save tries: NAME.conf, NAME-2.conf, ...
const maxSaveTries = 20

// Save writes text as a new file NAME.conf in the directory (mode 0600),
// or NAME-2.conf, NAME-3.conf, ... when that exists (a second enrollment
// with the same name never replaces the first one's config, nor follows
// a link planted under its name). name must be a checked client name
// (CheckAnswer). It returns the file's path.
func (d *ConfigDir) Save(name, text string) (string, error) {
	for i := 1; i <= maxSaveTries; i++ {
		file := name + ".conf"
		if i > 1 {
			file = fmt.Sprintf("%s-%d.conf", name, i)
		}
		err := d.SaveAs(file, text)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return filepath.Join(d.Path, file), err
	}
	return "", fmt.Errorf("%s: %s.conf and %d more names exist already", d.Path, name, maxSaveTries-1)
}

// SaveAs writes text as the new file file in the directory (mode 0600):
// O_CREAT|O_EXCL|O_NOFOLLOW through the directory's descriptor. An
// existing file or link of that name is an error wrapping os.ErrExist.
func (d *ConfigDir) SaveAs(file, text string) error {
	if file == "" || file == "." || file == ".." || filepath.Base(file) != file {
		return fmt.Errorf("%q is not a file name", file)
	}
	fd, err := unix.Openat(d.fd, file, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s: %w", filepath.Join(d.Path, file), os.ErrExist)
		}
		return fmt.Errorf("%s: %w", filepath.Join(d.Path, file), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.Path, file))
	_, err = f.WriteString(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(d.fd, file, 0)
		return fmt.Errorf("%s: %w", filepath.Join(d.Path, file), err)
	}
	return nil
}

// CanConnect reports why this process cannot bring a connection up: it
// needs CAP_NET_ADMIN (root has it) and /dev/net/tun. `vgate connect
// --invite` asks before it enrolls, so the invite is not spent for an
// interface that cannot be made.
func CanConnect() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err == nil && data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		return errors.New("this process lacks CAP_NET_ADMIN: vgate connect makes a TUN interface and routes, run it as root (sudo) or give it CAP_NET_ADMIN")
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("vgate connect needs /dev/net/tun: %w", err)
	}
	return f.Close()
}
