package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/api"
)

// Server is a running control socket.
type Server struct {
	path  string
	ino   uint64 // the socket file this server created
	owner uint32 // its owner uid: besides root, the one caller allowed
	srv   *http.Server
}

// Listen opens the control socket at path and serves h on it.
//
// The socket file is created in a private (0700) directory next to path,
// set to mode 0600 and only then renamed into place, so there is no
// moment when another user could open it. A leftover socket from a dead
// gateway is replaced; a socket some live gateway still answers on is an
// error (two gateways must not share one), and so is a path that exists
// but is not a socket (it is never removed). Every connection's peer
// credentials (SO_PEERCRED) are checked: only root and the socket's owner
// get answers, others get 403 with api.CodeForbidden.
func Listen(path string, h http.Handler) (*Server, error) {
	fail := func(err error) (*Server, error) { return nil, fmt.Errorf("control_socket %s: %w", path, err) }
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	if err := checkStale(path); err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp(dir, ".vgate.")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	tmpSock := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", tmpSock)
	if err != nil {
		return fail(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // the file moves; Close removes it by its final name
	if err := os.Chmod(tmpSock, 0o600); err != nil {
		ln.Close()
		return fail(err)
	}
	if err := os.Rename(tmpSock, path); err != nil {
		ln.Close()
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return fail(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	s := &Server{path: path, ino: st.Ino, owner: st.Uid}
	s.srv = &http.Server{
		Handler:           s.authorize(h),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute, // a kept-alive connection nobody uses
		ConnContext:       withPeer,
	}
	go s.srv.Serve(ln)
	return s, nil
}

// CheckFree reports whether a gateway could claim path as its control
// socket: an error when a live gateway answers there or the path is not a
// socket. `vgate run` checks it before it starts anything, so that a second
// gateway given the same control_socket (and so the same charon directory
// beside it) stops before it touches the first one's tunnels or charon.
func CheckFree(path string) error {
	if err := checkStale(path); err != nil {
		return fmt.Errorf("control_socket %s: %w", path, err)
	}
	return nil
}

// checkStale removes a dead gateway's socket at path. It refuses a live
// socket and anything that is not a socket.
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("exists and is not a socket (%s); not replacing it", fi.Mode().Type())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return errors.New("another gateway is listening there")
	}
	return nil // the rename in Listen replaces it
}

// Close stops the server and removes the socket file (if it is still the
// one this server created).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if fi, lerr := os.Lstat(s.path); lerr == nil && fi.Sys().(*syscall.Stat_t).Ino == s.ino {
		os.Remove(s.path)
	}
	return err
}

// peerKey is the context key of a connection's peer uid.
type peerKey struct{}

// peer is the credentials of a connection's other end.
type peer struct {
	uid uint32
	ok  bool // false: they could not be read
}

// withPeer records the peer credentials of c in ctx (http.Server.ConnContext).
func withPeer(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, peerOf(c))
}

func peerOf(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{}
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return peer{}
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return peer{}
	}
	return peer{uid: cred.Uid, ok: true}
}

// allowed says whether a caller may use the socket: root, or the user
// that owns the socket (the gateway's own user).
func allowed(p peer, owner uint32) bool {
	return p.ok && (p.uid == 0 || p.uid == owner)
}

// authorize refuses requests from callers that are not allowed.
func (s *Server) authorize(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peer)
		if !allowed(p, s.owner) {
			msg := fmt.Sprintf("control socket: uid %d may not use it (root or uid %d only)", p.uid, s.owner)
			if !p.ok {
				msg = "control socket: the caller's credentials could not be read"
			}
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusForbidden, api.Error{Error: msg, Code: api.CodeForbidden})
			return
		}
		h.ServeHTTP(w, r)
	})
}
