package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const ipsecPeering = `
peerings:
  - name: hq-firewall
    network: hq
    type: ipsec
    endpoint: 203.0.113.5
    address_spaces: [192.168.0.0/16]
    ipsec:
      psk_file: hq.psk
      local_id: 203.0.113.10
      ike: [aes256gcm16-prfsha384-ecp384, aes256-sha256-modp2048]
      esp: [aes256gcm16]
      ike_lifetime: 8h
      child_lifetime: 7.5h
      dpd: 10s
`

func TestIPsecParse(t *testing.T) {
	c := mustParse(t, minimal+ipsecPeering)
	p := c.Peerings[0]
	if !p.IsIPsec() || p.IPsec.PSKFile != "hq.psk" || p.IPsec.ChildLifetime != 450*time.Minute || len(p.IPsec.IKE) != 2 {
		t.Errorf("parsed %+v %+v", p, p.IPsec)
	}
}

func TestIPsecErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pairs       []string
		field, want string
	}{
		{"port in endpoint", []string{"endpoint: 203.0.113.5", "endpoint: 203.0.113.5:500"}, "peerings[0].endpoint", "without a port"},
		{"no endpoint", []string{"    endpoint: 203.0.113.5\n", ""}, "peerings[0].endpoint", "always initiates"},
		{"no psk", []string{"psk_file: hq.psk", "local_id: x"}, "peerings[0].ipsec.psk_file", "required"},
		{"legacy refused", []string{"aes256-sha256-modp2048", "3des-sha1-modp1024"}, "peerings[0].ipsec.ike[1]", "legacy: true"},
		{"bad esp", []string{"esp: [aes256gcm16]", "esp: [aes256gcm16-prfsha256]"}, "peerings[0].ipsec.esp[0]", "PRF"},
		{"short lifetime", []string{"ike_lifetime: 8h", "ike_lifetime: 5s"}, "peerings[0].ipsec.ike_lifetime", "from 10s"},
		{"child outlives ike", []string{"child_lifetime: 7.5h", "child_lifetime: 9h"}, "peerings[0].ipsec.child_lifetime", "longer than ike_lifetime"},
		{"dpd", []string{"dpd: 10s", "dpd: 1s"}, "peerings[0].ipsec.dpd", "from 2s"},
		{"public key", []string{"type: ipsec", "type: ipsec\n    public_key: \"" + keyWest + "\""}, "peerings[0].public_key", "no WireGuard public key"},
		{"unknown type", []string{"type: ipsec", "type: gre"}, "peerings[0].type", "not a peering type"},
		{"ipsec on wireguard", []string{"type: ipsec", "public_key: \"" + keyWest + "\""}, "peerings[0].ipsec", "only for type: ipsec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := parseErrors(t, minimal+edit(t, ipsecPeering, tc.pairs...))
			for _, e := range es {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.want) {
					return
				}
			}
			t.Errorf("want %s: ...%s...; got\n%v", tc.field, tc.want, es)
		})
	}
	// legacy: true allows it.
	mustParse(t, minimal+edit(t, ipsecPeering, "aes256-sha256-modp2048", "3des-sha1-modp1024", "dpd: 10s", "dpd: 10s\n      legacy: true"))
}

func TestIPsecOverlapAndLimit(t *testing.T) {
	// An IPsec peering's spaces take part in the overlap checks.
	es := parseErrors(t, minimal+edit(t, ipsecPeering, "[192.168.0.0/16]", "[10.1.5.0/24]"))
	if !strings.Contains(es.Error(), "10.1.5.0/24") || !strings.Contains(es.Error(), "10.1.0.0/16") {
		t.Errorf("overlap not reported: %v", es)
	}
	// And it counts toward max_tunnels.
	es = parseErrors(t, "max_tunnels: 1\n"+minimal+ipsecPeering+`  - name: west
    network: vnet-west
    public_key: "`+keyWest+`"
    address_spaces: [10.2.0.0/16]
`)
	if !strings.Contains(es.Error(), "max_tunnels") && !strings.Contains(es.Error(), "limit") {
		t.Errorf("tunnel limit not reported: %v", es)
	}
}

func TestIPsecLoadPSK(t *testing.T) {
	orig := LookCharon
	LookCharon = func() error { return nil }
	t.Cleanup(func() { LookCharon = orig })
	const psk = "correct-horse-battery"
	setup := func(t *testing.T, mode os.FileMode) string {
		dir := t.TempDir()
		writeKey(t, dir, 0o600)
		if err := os.WriteFile(filepath.Join(dir, "hq.psk"), []byte(psk+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, "hq.psk"), mode); err != nil {
			t.Fatal(err)
		}
		return writeConfig(t, dir, minimal+ipsecPeering)
	}
	c, err := Load(setup(t, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	if c.Peerings[0].IPsec.PSK.IsZero() {
		t.Fatal("PSK not loaded")
	}
	_, err = Load(setup(t, 0o640))
	if err == nil || !strings.Contains(err.Error(), "psk_file") || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), psk) {
		t.Errorf("0640 PSK file: %v", err)
	}
	LookCharon = func() error {
		return errors.New("strongSwan's charon is not installed; install the packages strongswan-charon")
	}
	_, err = Load(setup(t, 0o600))
	if err == nil || !strings.Contains(err.Error(), "strongswan-charon") {
		t.Errorf("missing charon: %v", err)
	}
}

func TestIPsecSelectorsOverlap(t *testing.T) {
	second := `  - name: hq-backup
    network: hq
    type: ipsec
    endpoint: 203.0.113.6
    address_spaces: [192.168.128.0/17]
    ipsec: { psk_file: hq2.psk }
`
	es := parseErrors(t, minimal+ipsecPeering+second)
	found := false
	for _, e := range es {
		found = found || e.Field == "peerings[1].address_spaces" && strings.Contains(e.Msg, "192.168.128.0/17") && strings.Contains(e.Msg, "hq-firewall") && strings.Contains(e.Msg, "share one kernel-libipsec TUN")
	}
	if !found {
		t.Errorf("overlapping IPsec selectors not refused:\n%v", es)
	}
	// Disjoint ones are fine.
	mustParse(t, minimal+ipsecPeering+strings.Replace(second, "192.168.128.0/17", "172.20.0.0/16", 1))
}
