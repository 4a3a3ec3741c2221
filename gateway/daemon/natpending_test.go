package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
)

// Until the planner applies NAT rules, a config with them is refused by
// start and reload (Run and server.Reload call refuseNAT on what
// config.Load returns; this test does not call Run, which would start a
// gateway in this namespace should the refusal ever break).
func TestRefuseNAT(t *testing.T) {
	dir := t.TempDir()
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	peerKey, _ := keys.GeneratePrivate()
	if err := keys.WritePrivateFile(filepath.Join(dir, "private.key"), k); err != nil {
		t.Fatal(err)
	}
	cfg := `name: hub
address_spaces: [10.9.0.0/16]
tunnel_address: 10.9.255.254
private_key_file: private.key
peerings:
  - name: a
    network: branch-a
    public_key: "` + peerKey.Public().String() + `"
    address_spaces: [10.1.0.0/16]
    nat: {ingress: [{internal: 10.1.0.0/16, external: 100.65.0.0/16}]}
`
	path := filepath.Join(dir, "vgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := refuseNAT(c); !errors.Is(err, errNATPending) {
		t.Fatalf("refuseNAT = %v, want errNATPending", err)
	}
	c.Peerings[0].NAT = nil
	if err := refuseNAT(c); err != nil {
		t.Errorf("without rules: %v", err)
	}
}
