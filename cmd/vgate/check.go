package main

import (
	"fmt"
	"io"

	"github.com/vgate-project/vgate/gateway/config"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	path := fs.String("config", "/etc/vgate/vgate.yaml", "config file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return configError(err)
	}
	bgp := "off"
	if cfg.BGP != nil {
		bgp = fmt.Sprintf("AS%d", cfg.BGP.ASN)
	}
	p2s := "off"
	if cfg.PointToSite != nil {
		p2s = fmt.Sprintf("%d group(s)", len(cfg.PointToSite.Groups))
	}
	fmt.Fprintf(stdout, "%s: OK: gateway %s, %d address space(s), %d/%d tunnels, public key %s, bgp %s, point-to-site %s\n",
		*path, cfg.Name, len(cfg.AddressSpaces), len(cfg.Peerings), cfg.MaxTunnels, cfg.PrivateKey.Public(), bgp, p2s)
	return nil
}
