package netlab

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseUnit(t *testing.T) {
	u, err := ParseUnit("../../deploy/vgate.service")
	if err != nil {
		t.Fatal(err)
	}
	if u.ExecStart[0] != "/usr/local/bin/vgate" || u.ConfigFile() != "/etc/vgate/vgate.yaml" ||
		u.ConfigDir() != "/etc/vgate" || u.StateDir() != "/var/lib/vgate" || u.RuntimeDir() != "/run/vgate" {
		t.Errorf("deploy/vgate.service: %+v", u)
	}
	if !slices.Contains(u.Bounding, "net_admin") || u.UMask != 0o077 || !u.PrivateTmp || u.ProtectSystem != "strict" {
		t.Errorf("deploy/vgate.service: %+v", u)
	}

	r, err := ParseUnit("../../deploy/vgate-relay.service")
	if err != nil {
		t.Fatal(err)
	}
	if r.ConfigFile() != "/etc/vgate/relay.yaml" || r.StateDir() != "/var/lib/vgate-relay" || r.RuntimeDir() != "" ||
		!slices.Equal(r.Bounding, []string{"net_bind_service"}) || !slices.Equal(r.Ambient, r.Bounding) ||
		!r.PrivateDevices || !r.NoNewPrivileges || r.ProtectSystem != "strict" {
		t.Errorf("deploy/vgate-relay.service: %+v", r)
	}

	p := filepath.Join(t.TempDir(), "x.service")
	os.WriteFile(p, []byte(`[Unit]
StateDirectory=ignored
[Service]
ExecStart=-/bin/x run
CapabilityBoundingSet=CAP_SYS_ADMIN
CapabilityBoundingSet=
CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN
StateDirectory=a
StateDirectoryMode=0700
UMask=0027
`), 0o600)
	u, err = ParseUnit(p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.Bounding, []string{"net_raw", "net_admin"}) || u.StateDir() != "/var/lib/a" ||
		u.StateMode != 0o700 || u.UMask != 0o027 || u.ExecStart[0] != "/bin/x" || u.PrivateTmp {
		t.Errorf("parsed %+v", u)
	}
	if m, err := CapMask(u.Bounding); err != nil || m != 1<<12|1<<13 {
		t.Errorf("CapMask %v = %x, %v", u.Bounding, m, err)
	}
	os.WriteFile(p, []byte("[Service]\nExecStart=/bin/x\nAmbientCapabilities=NET_RAW\n"), 0o600)
	if _, err := ParseUnit(p); err == nil {
		t.Error("capability without CAP_ prefix accepted")
	}
}
