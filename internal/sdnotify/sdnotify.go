// Package sdnotify tells systemd about a service's state (Type=notify, as
// in deploy/vgate.service): READY=1, RELOADING=1, STOPPING=1. It is used
// by `vgate run` (gateway/daemon) and `vgate relay` (gateway/relay).
package sdnotify

import (
	"net"
	"os"
)

// Notify sends state to $NOTIFY_SOCKET; a no-op outside systemd.
func Notify(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}
