package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialInNS opens a TCP connection from inside the lab namespace ns (a name
// under /var/run/netns), from local (zero: any) to remote. The socket is
// made on a thread switched into ns and stays there: all its traffic is
// ns's. The thread is switched back before it is released; if that fails
// the thread stays locked to the calling goroutine and dies with it, so no
// other goroutine ever runs in ns.
func DialInNS(ctx context.Context, ns string, local netip.Addr, remote netip.AddrPort) (net.Conn, error) {
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return nil, fmt.Errorf("netlab: namespace %s: %w", ns, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netlab: own network namespace: %w", err)
	}
	defer home.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netlab: enter namespace %s: %w", ns, err)
	}
	d := net.Dialer{}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	// A literal address and one family: the dial (socket, connect and the
	// wait for it) runs on this goroutine, hence in ns.
	conn, dialErr := d.DialContext(ctx, "tcp", remote.String())
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it ends with the goroutine.
		if conn != nil {
			conn.Close()
		}
		return nil, errors.Join(dialErr, fmt.Errorf("netlab: leave namespace %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	if dialErr != nil {
		return nil, fmt.Errorf("netlab: dial %s from %v in %s: %w", remote, local, ns, dialErr)
	}
	return conn, nil
}

// DialRawBGPInNS is DialRawBGP from inside the lab namespace ns (see
// DialInNS): the raw speaker's session runs in ns, e.g. through a tunnel
// that only exists there.
func DialRawBGPInNS(ctx context.Context, ns string, local netip.Addr, remote netip.AddrPort, cfg RawBGPConfig) (*RawBGP, error) {
	conn, err := DialInNS(ctx, ns, local, remote)
	if err != nil {
		return nil, err
	}
	r, err := NewRawBGP(ctx, conn, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}
