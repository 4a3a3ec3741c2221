package netlab

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// InNS runs fn on an OS thread switched into network namespace ns. Sockets
// fn creates stay in ns for their whole life, so the caller may keep using
// them from any goroutine afterwards; this is how the lab moves data without
// helper programs. fn must not start goroutines that expect to be in ns.
func InNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is unlocked only if it is back in its original
		// namespace; otherwise the runtime discards it when this goroutine
		// exits, so no other goroutine ever runs in the wrong namespace.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- fmt.Errorf("netlab: namespace %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netlab: setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netlab: restore namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// TCPTransfer sends size random bytes over TCP from namespace fromNS to a
// listener in namespace toNS reached at dst, and checks that the receiver
// got exactly those bytes (length and SHA-256). It gives up after 60 s plus
// 1 s per MB.
func (l *Lab) TCPTransfer(fromNS, toNS string, dst netip.Addr, size int) error {
	return l.TCPTransferVia(fromNS, toNS, dst, dst, size)
}

// TCPTransferVia is TCPTransfer to a listener on listen in toNS that the
// sender reaches at dst: another address when NAT translates it.
func (l *Lab) TCPTransferVia(fromNS, toNS string, listen, dst netip.Addr, size int) error {
	timeout := 60*time.Second + time.Duration(size>>20)*time.Second
	deadline := time.Now().Add(timeout)

	var ln net.Listener
	if err := InNS(toNS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(listen.String(), "0"))
		return err
	}); err != nil {
		return fmt.Errorf("netlab: listen in %s: %w", toNS, err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	type result struct {
		n   int64
		sum []byte
		err error
	}
	recv := make(chan result, 1)
	go func() {
		ln.(*net.TCPListener).SetDeadline(deadline)
		c, err := ln.Accept()
		if err != nil {
			recv <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		h := sha256.New()
		n, err := io.Copy(h, c)
		recv <- result{n, h.Sum(nil), err}
	}()

	var c net.Conn
	if err := InNS(fromNS, func() (err error) {
		d := net.Dialer{Deadline: deadline}
		c, err = d.Dial("tcp", net.JoinHostPort(dst.String(), strconv.Itoa(port)))
		return err
	}); err != nil {
		ln.Close()
		<-recv
		return fmt.Errorf("netlab: dial %s from %s: %w", dst, fromNS, err)
	}
	c.SetDeadline(deadline)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(c, h), io.LimitReader(rand.Reader, int64(size)))
	if err == nil {
		err = c.(*net.TCPConn).CloseWrite()
	}
	if err != nil {
		c.Close()
		ln.Close()
		<-recv
		return fmt.Errorf("netlab: send %s -> %s after %d bytes: %w", fromNS, dst, n, err)
	}
	r := <-recv
	c.Close()
	switch {
	case r.err != nil:
		return fmt.Errorf("netlab: receive in %s after %d bytes: %w", toNS, r.n, r.err)
	case r.n != int64(size):
		return fmt.Errorf("netlab: %s received %d bytes, sent %d", toNS, r.n, size)
	case !bytes.Equal(r.sum, h.Sum(nil)):
		return fmt.Errorf("netlab: %d bytes arrived corrupted in %s (sha256 mismatch)", size, toNS)
	}
	return nil
}
