package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a background process started in a namespace with [Lab.Start].
type Proc struct {
	NS      string
	Args    []string
	LogPath string

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // valid after done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start runs args in namespace ns in the background with stdout and stderr
// appended to logPath (created, with parent directories, if missing; a
// relative path is inside the lab's Dir). `ip
// netns exec` execs the program, so Pid is the program's own PID; to set
// environment variables use "env", "K=V", "prog", ... which also execs. The
// lab tracks the process and Close stops it.
func (l *Lab) Start(ns string, logPath string, args ...string) (*Proc, error) {
	if len(args) == 0 {
		return nil, errors.New("netlab: Start: no command")
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, errors.New("netlab: lab closed")
	}
	if !filepath.IsAbs(logPath) {
		logPath = l.Path(logPath)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "### netlab: %s: %s\n", ns, strings.Join(args, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group so a Ctrl-C aimed at the test does not race Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("netlab: start %v in %s: %w", args, ns, err)
	}
	p := &Proc{NS: ns, Args: args, LogPath: logPath, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	l.mu.Lock()
	if l.closed { // Close ran meanwhile: do not leak the process
		l.mu.Unlock()
		return nil, errors.Join(errors.New("netlab: lab closed"), p.Stop())
	}
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Pid is the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process (by PID).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to end and returns its exit error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Stop ends the process: SIGTERM, up to 5 s grace, then SIGKILL to its PID.
// A non-zero exit caused by the signal is not an error; Stop is idempotent.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		if p.Exited() {
			return
		}
		_ = p.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.Signal(syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				p.stopErr = fmt.Errorf("netlab: pid %d (%s) survived SIGKILL", p.Pid(), p.Args[0])
			}
		}
	})
	return p.stopErr
}

// CPUTime returns the user+system CPU time the running process has used so
// far (all threads), from /proc/<pid>/stat.
func (p *Proc) CPUTime() (time.Duration, error) {
	return ProcessCPUTime(p.Pid())
}

// clockTick is USER_HZ, fixed at 100 on every Linux architecture Go supports.
const clockTick = 100

// ProcessCPUTime returns utime+stime of a process from /proc/<pid>/stat.
func ProcessCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the ")" closing comm: state is field 3, utime 14, stime 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("netlab: bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("netlab: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("netlab: /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// MaxRSS is the peak resident set size of the ended process, in bytes
// (getrusage); false while it runs. `ip netns exec` execs the program, so
// this is the program's own peak.
func (p *Proc) MaxRSS() (int64, bool) {
	if !p.Exited() || p.cmd.ProcessState == nil {
		return 0, false
	}
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, false
	}
	return ru.Maxrss << 10, true // Linux reports KiB
}

// LogTail returns the last n lines of the process log.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
