package netlab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Unit is what a sandbox takes from a systemd service file: the command,
// the capabilities and the file-system layout and restrictions.
type Unit struct {
	Path string
	// ExecStart is the gateway's command line (ExecStartPre the check run
	// before it), split on white space.
	ExecStart, ExecStartPre []string
	// Bounding and Ambient are CapabilityBoundingSet and
	// AmbientCapabilities as setpriv(1) names them: "net_admin", ...
	Bounding, Ambient []string
	// StateDirs, RuntimeDirs and ConfigDirs are StateDirectory (under
	// /var/lib), RuntimeDirectory (under /run) and ConfigurationDirectory
	// (under /etc), as written in the unit.
	StateDirs, RuntimeDirs, ConfigDirs []string
	StateMode, RuntimeMode             os.FileMode
	UMask                              os.FileMode
	ProtectSystem, ProtectHome         string
	PrivateTmp, NoNewPrivileges        bool
	ProtectKernelTunables              bool
	// PrivateDevices: /dev holds only the pseudo-devices (null, zero,
	// full, random, urandom, tty).
	PrivateDevices bool
}

// StateDir, RuntimeDir and ConfigDir are the absolute paths of the unit's
// first state, runtime and configuration directory ("" if none).
func (u *Unit) StateDir() string   { return first("/var/lib", u.StateDirs) }
func (u *Unit) RuntimeDir() string { return first("/run", u.RuntimeDirs) }
func (u *Unit) ConfigDir() string  { return first("/etc", u.ConfigDirs) }

func first(base string, dirs []string) string {
	if len(dirs) == 0 {
		return ""
	}
	return filepath.Join(base, dirs[0])
}

// ConfigFile is the value of --config in ExecStart.
func (u *Unit) ConfigFile() string {
	for i, a := range u.ExecStart {
		if a == "--config" && i+1 < len(u.ExecStart) {
			return u.ExecStart[i+1]
		}
	}
	return ""
}

// ParseUnit reads the [Service] section of a systemd unit file. It knows
// only the settings Unit holds; lists accumulate over repeated settings
// and an empty assignment resets them, as in systemd.
func ParseUnit(path string) (*Unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := &Unit{Path: path, StateMode: 0o755, RuntimeMode: 0o755, UMask: 0o022, ProtectSystem: "no", ProtectHome: "no"}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		if section != "Service" {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: no '=' in %q", path, n, line)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		list := func(dst *[]string) {
			if val == "" {
				*dst = nil
				return
			}
			*dst = append(*dst, strings.Fields(val)...)
		}
		caps := func(dst *[]string) error {
			if val == "" {
				*dst = nil
				return nil
			}
			for _, c := range strings.Fields(val) {
				name, ok := strings.CutPrefix(c, "CAP_")
				if !ok || !slices.Contains(capNames[:], strings.ToLower(name)) {
					return fmt.Errorf("%s:%d: %s: unknown capability %q", path, n, key, c)
				}
				*dst = append(*dst, strings.ToLower(name))
			}
			return nil
		}
		mode := func(dst *os.FileMode) error {
			m, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return fmt.Errorf("%s:%d: %s=%q: not an octal mode", path, n, key, val)
			}
			*dst = os.FileMode(m)
			return nil
		}
		yes := val == "yes" || val == "true" || val == "on" || val == "1"
		var err error
		switch key {
		case "ExecStart":
			u.ExecStart = strings.Fields(strings.TrimLeft(val, "-@:+!"))
		case "ExecStartPre":
			u.ExecStartPre = strings.Fields(strings.TrimLeft(val, "-@:+!"))
		case "CapabilityBoundingSet":
			err = caps(&u.Bounding)
		case "AmbientCapabilities":
			err = caps(&u.Ambient)
		case "StateDirectory":
			list(&u.StateDirs)
		case "RuntimeDirectory":
			list(&u.RuntimeDirs)
		case "ConfigurationDirectory":
			list(&u.ConfigDirs)
		case "StateDirectoryMode":
			err = mode(&u.StateMode)
		case "RuntimeDirectoryMode":
			err = mode(&u.RuntimeMode)
		case "UMask":
			err = mode(&u.UMask)
		case "ProtectSystem":
			u.ProtectSystem = val
		case "ProtectHome":
			u.ProtectHome = val
		case "PrivateTmp":
			u.PrivateTmp = yes
		case "NoNewPrivileges":
			u.NoNewPrivileges = yes
		case "ProtectKernelTunables":
			u.ProtectKernelTunables = yes
		case "PrivateDevices":
			u.PrivateDevices = yes
		}
		if err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(u.ExecStart) == 0 {
		return nil, fmt.Errorf("%s: no ExecStart", path)
	}
	return u, nil
}

// capNames are the Linux capabilities by number, as setpriv(1) and
// /proc/<pid>/status count them.
var capNames = [...]string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
	"wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// CapMask is the bit mask of the named capabilities, as CapEff and the
// other Cap* lines of /proc/<pid>/status show it.
func CapMask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		i := slices.Index(capNames[:], n)
		if i < 0 {
			return 0, fmt.Errorf("netlab: unknown capability %q", n)
		}
		m |= 1 << i
	}
	return m, nil
}

// Sandbox runs a gateway under the restrictions of its systemd unit,
// without systemd: as root but with only the unit's capabilities
// (setpriv(1): bounding, inheritable and ambient sets), no new
// privileges, the unit's umask, and in a private mount namespace
// (unshare(1), propagation private: nothing mounted there is seen
// outside) where
//
//   - the unit's configuration, state and runtime directories are bind
//     mounts of Config, State and Runtime (the configuration directory
//     read-only),
//   - the vgate binary under test is bound at ExecStart's path,
//   - /tmp and /var/tmp are private, empty tmpfs (PrivateTmp=yes),
//   - /home, /root and /run/user are empty and inaccessible
//     (ProtectHome=yes),
//   - /dev is a tmpfs holding only the pseudo-devices (PrivateDevices=yes),
//   - every other mount is read-only (ProtectSystem=strict) except /dev
//     and /proc, and /proc/sys and /sys are read-only too
//     (ProtectKernelTunables=yes),
//   - host directories a test names with BindReadOnly appear read-only at
//     the given paths (what another unit's directories are on a real
//     host: the gateway's state directory for a relay beside it).
//
// Mount points that do not exist on the host (/etc/vgate, ...) are made
// without touching the host: their parent directory is replaced, in the
// private namespace only, by a tmpfs holding bind mounts of its entries.
//
// Not emulated (they need systemd): SystemCallFilter,
// RestrictAddressFamilies, DevicePolicy and the other Protect*/Restrict*
// settings.
type Sandbox struct {
	Unit *Unit
	// Dir holds Config, State and Runtime and the script's scratch space.
	Dir                    string
	Config, State, Runtime string
	// Caps are the capabilities the process gets; NewSandbox sets them to
	// the unit's bounding set (a test may take one away).
	Caps []string
	// Bin is the vgate binary bound at ExecStart[0].
	Bin string
	// extra are BindReadOnly's directories, host path → path inside.
	extra []bindMount
}

type bindMount struct{ src, dst string }

// BindReadOnly makes host directory src appear, read-only, at dst inside
// the sandbox; PathIn maps paths under src there.
func (s *Sandbox) BindReadOnly(src, dst string) {
	s.extra = append(s.extra, bindMount{src, dst})
}

// NewSandbox makes the host directories of a sandbox for unit u, named
// name inside the lab's directory, with the unit's directory modes. The
// unit needs a ConfigurationDirectory and a StateDirectory; its
// RuntimeDirectory is optional.
func (l *Lab) NewSandbox(u *Unit, name string) (*Sandbox, error) {
	if u.ConfigDir() == "" || u.StateDir() == "" {
		return nil, fmt.Errorf("netlab: %s: sandbox needs ConfigurationDirectory and StateDirectory", u.Path)
	}
	dir := l.Path(name)
	s := &Sandbox{
		Unit: u, Dir: dir, Caps: slices.Clone(u.Bounding),
		Config: filepath.Join(dir, "etc"), State: filepath.Join(dir, "state"), Runtime: filepath.Join(dir, "run"),
	}
	for d, m := range map[string]os.FileMode{dir: 0o700, s.Config: 0o755, s.State: u.StateMode, s.Runtime: u.RuntimeMode, filepath.Join(dir, "mnt"): 0o700} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, m); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// PathIn maps a host path inside Config, State or Runtime (or Bin) to the
// path the sandboxed process sees; other paths are unchanged.
func (s *Sandbox) PathIn(p string) string {
	if p == s.Bin && s.Bin != "" {
		return s.Unit.ExecStart[0]
	}
	dirs := map[string]string{s.Config: s.Unit.ConfigDir(), s.State: s.Unit.StateDir()}
	if s.Unit.RuntimeDir() != "" {
		dirs[s.Runtime] = s.Unit.RuntimeDir()
	}
	for _, m := range s.extra {
		dirs[m.src] = m.dst
	}
	for host, in := range dirs {
		if rel, err := filepath.Rel(host, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return filepath.Join(in, rel)
		}
	}
	return p
}

// Apply moves g's key, config, control socket and state directory into
// the sandbox, at the paths of the unit's layout (the config file is
// ExecStart's --config), and makes g.Start run the gateway through Wrapper.
// Call it before Start.
func (s *Sandbox) Apply(g *Gateway) error {
	cfg := s.Unit.ConfigFile()
	if cfg == "" || filepath.Dir(cfg) != s.Unit.ConfigDir() {
		return fmt.Errorf("netlab: %s: ExecStart --config %q is not in ConfigurationDirectory %s", s.Unit.Path, cfg, s.Unit.ConfigDir())
	}
	key := filepath.Join(s.Config, g.Name+".key")
	if err := os.WriteFile(key, []byte(g.Key.Base64()+"\n"), 0o600); err != nil {
		return err
	}
	s.Bin = g.Bin
	g.KeyFile = key
	g.ConfigPath = filepath.Join(s.Config, filepath.Base(cfg))
	g.Socket = filepath.Join(s.Runtime, "vgate.sock")
	g.StateDir = s.State
	g.PathIn = s.PathIn
	g.Wrapper = s.Wrapper
	return nil
}

// Wrapper is the command line that runs the rest of its arguments in the
// sandbox: `unshare --mount --propagation private sh -c SCRIPT sandbox
// PROGRAM ARGS...`, where the script sets up the mounts and execs
// `setpriv ... PROGRAM ARGS`, so the process keeps one PID throughout.
func (s *Sandbox) Wrapper() []string {
	return []string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", s.Script(), "vgate-sandbox"}
}

// Script is the shell script of Wrapper.
func (s *Sandbox) Script() string {
	u := s.Unit
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("set -eu")
	// Other labs' namespace handles need not stay alive in here. A lab
	// running at the same time may delete one between findmnt and umount.
	w("findmnt -rn -o TARGET | grep '^/run/netns/' | while read -r m; do umount -l \"$m\" 2>/dev/null || true; done")
	w(`shadow() { # $1: dir to replace by a tmpfs holding bind mounts of its entries
	o=%s$(printf %%s "$1" | tr / _)
	mkdir -p "$o"; mount --rbind "$1" "$o"
	mount -t tmpfs -o mode=$(stat -c %%a "$1") vgate-sandbox "$1"
	for e in "$o"/* "$o"/.[!.]* "$o"/..?*; do
		[ -e "$e" ] || [ -L "$e" ] || continue
		n=${e##*/}
		if [ -L "$e" ]; then cp -P "$e" "$1/$n"
		elif [ -d "$e" ]; then mkdir -p "$1/$n"; mount --bind "$e" "$1/$n"
		else [ -e "$1/$n" ] || : > "$1/$n"; mount --bind "$e" "$1/$n"; fi
	done
	umount -l "$o"
}`, quote(filepath.Join(s.Dir, "mnt")+"/"))
	type bind struct {
		src, dst string
		dir, ro  bool
	}
	binds := []bind{{s.Config, u.ConfigDir(), true, false}, {s.State, u.StateDir(), true, false}}
	if u.RuntimeDir() != "" {
		binds = append(binds, bind{s.Runtime, u.RuntimeDir(), true, false})
	}
	for _, m := range s.extra {
		binds = append(binds, bind{m.src, m.dst, true, true})
	}
	if s.Bin != "" {
		binds = append(binds, bind{s.Bin, u.ExecStart[0], false, false})
	}
	var shadowed []string
	for _, m := range binds {
		parent := filepath.Dir(m.dst)
		for !exists(parent) {
			parent = filepath.Dir(parent)
		}
		if !slices.Contains(shadowed, parent) {
			shadowed = append(shadowed, parent)
			w("shadow %s", quote(parent))
		}
		w("mkdir -p %s", quote(filepath.Dir(m.dst)))
		if m.dir {
			w("mkdir -p %s", quote(m.dst))
		} else {
			w("[ -e %[1]s ] || : > %[1]s", quote(m.dst))
		}
		w("mount --bind %s %s", quote(m.src), quote(m.dst))
		if m.ro {
			w("mount -o remount,bind,ro %s", quote(m.dst))
		}
	}
	writable := []string{u.StateDir()}
	if u.RuntimeDir() != "" {
		writable = append(writable, u.RuntimeDir())
	}
	if u.PrivateDevices {
		// The pseudo-devices, bound from the host's /dev before a tmpfs
		// covers it.
		w("d=%s", quote(filepath.Join(s.Dir, "mnt", "dev")))
		w(`mkdir -p "$d"
for n in null zero full random urandom tty; do : > "$d/$n"; mount --bind "/dev/$n" "$d/$n"; done
mount -t tmpfs -o mode=0755,nosuid,noexec vgate-sandbox /dev
for n in null zero full random urandom tty; do : > "/dev/$n"; mount --bind "$d/$n" "/dev/$n"; umount -l "$d/$n"; done`)
	}
	if u.PrivateTmp {
		w("mount -t tmpfs -o mode=1777 vgate-sandbox /tmp")
		w("mount -t tmpfs -o mode=1777 vgate-sandbox /var/tmp")
		writable = append(writable, "/tmp", "/var/tmp")
	}
	if u.ProtectHome == "yes" || u.ProtectHome == "read-only" || u.ProtectHome == "tmpfs" {
		for _, d := range []string{"/home", "/root", "/run/user"} {
			w("if [ -d %[1]s ]; then mount -t tmpfs -o ro,mode=0 vgate-sandbox %[1]s; fi", quote(d))
		}
	}
	if u.ProtectKernelTunables {
		w("mount --bind /proc/sys /proc/sys")
	}
	if u.ProtectSystem == "strict" {
		// Per mount (remount,bind): the host's file systems stay as they
		// are. Mounts hidden under others cannot be reached by path and
		// are skipped.
		var cases []string
		for _, d := range writable {
			cases = append(cases, quote(d), quote(d)+"/*")
		}
		keep := "/dev|/dev/*|/proc|/proc/*"
		if u.ProtectKernelTunables {
			keep = "/dev|/dev/*|/proc"
		}
		w(`findmnt -rn -o TARGET | while read -r m; do
	case "$m" in %s|%s) continue;; /proc/sys|/proc/sys/*) ;; /proc/*) continue;; esac
	if [ -e "$m" ]; then mount -o remount,bind,ro "$m" 2>/dev/null || true; fi
done`, keep, strings.Join(cases, "|"))
		// The configuration directory is read-only under any setting.
	}
	w("mount -o remount,bind,ro %s", quote(u.ConfigDir()))
	w("umask %04o", u.UMask)
	capList := "-all"
	for _, c := range s.Caps {
		capList += ",+" + c
	}
	ambient := "-all"
	for _, c := range u.Ambient {
		if slices.Contains(s.Caps, c) {
			ambient += ",+" + c
		}
	}
	nnp := ""
	if u.NoNewPrivileges {
		nnp = "--no-new-privs "
	}
	w(`exec setpriv %s--bounding-set %s --inh-caps %s --ambient-caps %s -- "$@"`, nnp, capList, ambient, ambient)
	return b.String()
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// quote quotes s for sh.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ProcStatus returns the fields of /proc/<pid>/status ("CapEff",
// "NoNewPrivs", "Umask", ...).
func ProcStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	if len(m) == 0 {
		return nil, errors.New("netlab: empty /proc/" + strconv.Itoa(pid) + "/status")
	}
	return m, nil
}
