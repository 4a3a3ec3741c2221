package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
)

// WGPeer is the one WireGuard peer of a stock WireGuard interface.
type WGPeer struct {
	PublicKey  keys.PublicKey
	Endpoint   string
	AllowedIPs []netip.Prefix
	Keepalive  time.Duration
}

// StockWireGuard runs Debian's wireguard-go on ifName in namespace ns and
// configures it with `wg set` the way an administrator would: private
// key, listen port, one peer. It leaves addresses, MTU, link state and
// routes to the caller. ifName must be unique to the lab: wireguard-go's
// UAPI sockets in /var/run/wireguard are shared by all namespaces.
// wireguard-go is a lab process (ended by PID at Close) and the interface
// goes with it.
func (l *Lab) StockWireGuard(ns, ifName string, key keys.PrivateKey, listenPort int, peer WGPeer) (*Proc, error) {
	if len(ifName) > 15 {
		return nil, fmt.Errorf("netlab: interface name %q longer than 15 characters", ifName)
	}
	keyPath := l.Path(ifName + "-wg.key")
	if err := os.WriteFile(keyPath, []byte(key.Base64()+"\n"), 0o600); err != nil {
		return nil, err
	}
	p, err := l.Start(ns, ifName+"-wireguard-go.log", lookSbin("wireguard-go"), "-f", ifName)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat("/var/run/wireguard/" + ifName + ".sock"); err == nil {
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			return nil, fmt.Errorf("netlab: wireguard-go %s did not start:\n%s", ifName, p.LogTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	allowed := make([]string, len(peer.AllowedIPs))
	for i, a := range peer.AllowedIPs {
		allowed[i] = a.String()
	}
	args := []string{lookSbin("wg"), "set", ifName,
		"private-key", keyPath, "listen-port", fmt.Sprint(listenPort),
		"peer", peer.PublicKey.String(), "endpoint", peer.Endpoint,
		"allowed-ips", strings.Join(allowed, ",")}
	if peer.Keepalive > 0 {
		args = append(args, "persistent-keepalive", fmt.Sprint(int(peer.Keepalive/time.Second)))
	}
	if out, err := l.Run(ns, args...); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	return p, nil
}

// addRouterNS creates a third-party router's namespace ns with wan0 on
// the underlay bridge (bridge port port) at underlay/24.
func (l *Lab) addRouterNS(ns, port string, underlay netip.Addr) error {
	if err := l.addNS(ns); err != nil {
		return err
	}
	return l.ipAll(
		"-n "+ns+" link add wan0 type veth peer name "+port+" netns "+l.WAN,
		"-n "+l.WAN+" link set "+port+" master br0 up",
		"-n "+ns+" addr add "+underlay.String()+"/24 dev wan0",
		"-n "+ns+" link set wan0 up",
	)
}

// upRouterWireGuard is a router's tunnel: StockWireGuard on ifName with
// local (a /32) as a point-to-point address whose peer is remote, the
// other end's tunnel address, so the kernel and the router see remote as
// directly connected on ifName (single-hop eBGP and BFD), MTU 1420.
func (l *Lab) upRouterWireGuard(ns, ifName string, key keys.PrivateKey, listenPort int, local, remote netip.Addr, peer WGPeer) (*Proc, error) {
	p, err := l.StockWireGuard(ns, ifName, key, listenPort, peer)
	if err != nil {
		return nil, err
	}
	return p, l.ipAll(
		"-n "+ns+" addr add "+local.String()+"/32 peer "+remote.String()+"/32 dev "+ifName,
		"-n "+ns+" link set "+ifName+" mtu 1420 up",
	)
}
