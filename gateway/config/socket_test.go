package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestControlSocket(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, body, want string
		err              bool
	}{
		{"set.yaml", "name: east\ncontrol_socket: /tmp/x.sock\n", "/tmp/x.sock", false},
		{"unset.yaml", "name: east\n", DefaultControlSocket, false},
		// The rest of the file does not validate: the socket is still read.
		{"invalid.yaml", "name: \"\"\nbogus: 1\nmax_tunnels: lots\ncontrol_socket: /tmp/y.sock\n", "/tmp/y.sock", false},
		// Broken YAML: the control_socket line if any, else the default,
		// beside the syntax error.
		{"broken.yaml", "control_socket: [\n", DefaultControlSocket, true},
		{"broken-set.yaml", "name: [east\ncontrol_socket: /tmp/z.sock  # here\n", "/tmp/z.sock", true},
		{"broken-quoted.yaml", "control_socket: \"/tmp/q.sock\"\nname: 'east\n", "/tmp/q.sock", true},
		{"not-a-string.yaml", "control_socket: [a, b]\n", "", true},
	} {
		got, err := ControlSocket(write(tc.name, tc.body))
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: ControlSocket = %q, %v; want %q (error %v)", tc.name, got, err, tc.want, tc.err)
		}
	}
	if _, err := ControlSocket(filepath.Join(dir, "none.yaml")); err == nil {
		t.Error("missing file: no error")
	}
}
