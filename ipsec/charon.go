package ipsec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Packages are the Debian 12 packages vgate's charon needs: the daemon
// (charon-systemd, which keeps no PID file), the VICI plugin (swanctl's
// package), kernel-libipsec, and openssl/gcm (without the last there is
// no X25519 or AES-GCM).
const Packages = "charon-systemd strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins"

// CharonPaths are where distributions install the IKE daemon, in the order
// tried. charon-systemd comes first: plain charon insists on creating
// /var/run/charon.pid (a path compiled in) and exits when it cannot, which
// it cannot under deploy/vgate.service's read-only /run, and two plain
// charons on one host (two gateways in lab namespaces) refuse each other.
// charon-systemd keeps no PID file and runs in the foreground.
var CharonPaths = []string{"/usr/sbin/charon-systemd", "/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon", "/usr/libexec/strongswan/charon", "/usr/lib/strongswan/charon"}

// PluginDirs are where distributions install charon's plugins.
var PluginDirs = []string{"/usr/lib/ipsec/plugins", "/usr/lib/x86_64-linux-gnu/ipsec/plugins", "/usr/lib64/ipsec/plugins", "/usr/libexec/ipsec/plugins", "/usr/lib/strongswan/plugins"}

// section is the strongswan.conf section a daemon reads its settings
// from: its binary's name.
func section(charon string) string { return filepath.Base(charon) }

// ErrNoCharon: charon or a plugin vgate needs is not installed (errors.Is).
var ErrNoCharon = errors.New("strongSwan's charon is not installed")

// neededPlugins are the plugin files without which vgate's charon cannot
// run an IPsec peering here.
var neededPlugins = []string{"kernel-libipsec", "openssl", "vici", "error-notify", "kernel-netlink", "socket-default"}

// FindCharon returns the path of charon and checks that the plugins vgate
// loads are installed beside it. The error wraps ErrNoCharon and names the
// packages to install.
func FindCharon() (string, error) {
	for _, p := range CharonPaths {
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			continue
		}
		var missing []string
		for _, pl := range neededPlugins {
			found := false
			for _, d := range PluginDirs {
				if _, err := os.Stat(filepath.Join(d, "libstrongswan-"+pl+".so")); err == nil {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, pl)
			}
		}
		if len(missing) > 0 {
			return "", fmt.Errorf("%w completely: no plugin %s for %s; install the packages %s", ErrNoCharon, strings.Join(missing, ", "), p, Packages)
		}
		return p, nil
	}
	return "", fmt.Errorf("%w (looked for %s); install the packages %s", ErrNoCharon, strings.Join(CharonPaths, ", "), Packages)
}

// SystemPIDFile is where charon records its PID (compiled in; it cannot
// be moved). vgate's charon cannot create it under vgate's read-only
// system (harmless), but a system strongSwan's charon there means ports
// 500/4500 are taken and vgate's charon would refuse to start.
const SystemPIDFile = "/var/run/charon.pid"

// otherCharon returns the PID of a live charon recorded in pidFile that is
// not ours (0: none).
func otherCharon(pidFile string, ours int) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || pid == ours {
		return 0
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0
	}
	return pid
}

// endStale ends a charon a previous vgate left running (its PID in
// p.PID), if that process still runs charon and nobody owns it any more
// (its parent is gone: it was re-parented to init). A charon whose parent
// still runs belongs to another running gateway that uses the same
// directory (two gateways with control sockets in one directory): that is
// refused, never killed.
func endStale(d *privateDir, p Paths, charon string, log *slog.Logger) error {
	b, err := d.readFile(filepath.Base(p.PID))
	if err != nil {
		return nil
	}
	pid := pidFrom(b)
	if pid == 0 {
		return nil
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || exe != charon {
		return nil
	}
	if ppid := parentOf(pid); ppid > 1 && ppid != os.Getpid() {
		return fmt.Errorf("charon pid %d in %s belongs to another running process (pid %d), likely another gateway whose control_socket is in the same directory: give each gateway its own directory", pid, p.Dir, ppid)
	}
	log.Warn("ending the charon a previous vgate left running", "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	return nil
}

// parentOf is pid's parent process id, 0 when it cannot be read.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// startCharon writes the private config and starts charon with it. It
// ends with vgate (parent-death signal); its stderr goes to log at debug.
func startCharon(charon string, p Paths, log *slog.Logger) (*exec.Cmd, error) {
	d, err := openPrivateDir(p.Dir) // dir.go
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if pid := otherCharon(SystemPIDFile, 0); pid != 0 {
		return nil, fmt.Errorf("another charon (a system strongSwan?) runs as pid %d (%s): it holds UDP 500/4500; stop it (systemctl disable --now strongswan strongswan-starter) so that vgate can run its own", pid, SystemPIDFile)
	}
	if err := endStale(d, p, charon, log); err != nil {
		return nil, err
	}
	if err := udpPortsFree(500, 4500); err != nil {
		return nil, fmt.Errorf("%w: another IKE daemon (a system strongSwan? systemctl disable --now strongswan strongswan-starter) holds it; vgate runs its own charon", err)
	}
	if err := d.writeFile(filepath.Base(p.Conf), []byte(StrongswanConf(section(charon), p))); err != nil {
		return nil, err
	}
	for _, s := range []string{p.VICI, p.ErrorNotify} {
		d.remove(filepath.Base(s))
	}
	cmd := exec.Command(charon)
	cmd.Env = []string{"STRONGSWAN_CONF=" + p.Conf, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = p.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", charon, err)
	}
	_ = d.writeFile(filepath.Base(p.PID), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"))
	go logLines(out, log)
	return cmd, nil
}

// logLines copies charon's log lines to log, at debug.
func logLines(r io.Reader, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	for sc.Scan() {
		log.Debug(sc.Text())
	}
}

// udpPortsFree checks that nothing is bound to the UDP ports (IKE's 500
// and 4500) by binding them briefly: charon could not bind them and would
// wait for IKE packets that never come.
func udpPortsFree(ports ...int) error {
	for _, port := range ports {
		c, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("UDP port %d is in use", port)
			}
			return fmt.Errorf("UDP port %d: %w", port, err)
		}
		c.Close()
	}
	return nil
}
