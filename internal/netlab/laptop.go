package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/p2s"
)

// Laptop is a point-to-site client machine: a namespace <prefix>-lt<i>
// whose wan0 sits on the underlay bridge with 198.18.0.(100+i)/24 and
// fd18::(100+i)/64, next to the gateways. It has no route anywhere else:
// whatever it reaches beyond the underlay, it reaches through a tunnel.
//
//	              <prefix>-wan br0
//	gw1 (198.18.0.1) ... gw<n>       lt<i>
//	                                  |
//	                     wan0 198.18.0.(100+i)/24   <prefix>-lt<i>
//	                     <IfName>: WireGuard client (stock or vgate connect)
type Laptop struct {
	Index    int
	NS       string
	Underlay netip.Addr
	// IfName is the WireGuard interface, unique to the lab and laptop:
	// wireguard-go's UAPI sockets live in /var/run/wireguard, shared by all
	// namespaces.
	IfName string
	// Addresses are the tunnel addresses once up.
	Addresses []netip.Addr

	lab  *Lab
	proc *Proc
}

// AddLaptop creates laptop i (1..99).
func (l *Lab) AddLaptop(i int) (*Laptop, error) {
	if i < 1 || i > 99 {
		return nil, fmt.Errorf("netlab: laptop index %d outside 1..99", i)
	}
	tag := l.Prefix
	if len(tag) > 9 {
		tag = tag[len(tag)-9:]
	}
	lt := &Laptop{
		Index:    i,
		NS:       fmt.Sprintf("%s-lt%d", l.Prefix, i),
		Underlay: netip.AddrFrom4([4]byte{198, 18, 0, byte(100 + i)}),
		IfName:   fmt.Sprintf("wg%s%d", tag, i),
		lab:      l,
	}
	if err := l.addNS(lt.NS); err != nil {
		return nil, err
	}
	port := fmt.Sprintf("lt%d", i)
	if err := l.ipAll(
		"-n "+lt.NS+" link add wan0 type veth peer name "+port+" netns "+l.WAN,
		"-n "+l.WAN+" link set "+port+" master br0 up",
		"-n "+lt.NS+" addr add "+lt.Underlay.String()+"/24 dev wan0",
		"-n "+lt.NS+" addr add "+fmt.Sprintf("fd18::%x", 100+i)+"/64 dev wan0 nodad",
		"-n "+lt.NS+" link set wan0 up",
	); err != nil {
		return nil, err
	}
	return lt, nil
}

// UpStock brings the wg-quick config text up the way a stock Linux laptop
// would without wg-quick: Debian's wireguard-go on lt.IfName, `wg setconf`
// with the config stripped of what only wg-quick understands (as
// `wg-quick strip`), then addresses, link and a route per AllowedIPs
// prefix with ip(8).
func (lt *Laptop) UpStock(conf string) error {
	q, err := p2s.ParseQuick(conf)
	if err != nil {
		return err
	}
	path := lt.lab.Path(lt.NS + "-setconf.conf")
	if err := os.WriteFile(path, []byte(p2s.StripQuick(conf)), 0o600); err != nil {
		return err
	}
	p, err := lt.lab.Start(lt.NS, lt.NS+"-wireguard-go.log", "wireguard-go", "-f", lt.IfName)
	if err != nil {
		return err
	}
	lt.proc = p
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat("/var/run/wireguard/" + lt.IfName + ".sock"); err == nil {
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("netlab: wireguard-go %s did not start:\n%s", lt.IfName, p.LogTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := lt.lab.Run(lt.NS, "wg", "setconf", lt.IfName, path); err != nil {
		return err
	}
	lt.Addresses = nil
	var cmds []string
	for _, a := range q.Addresses {
		cmds = append(cmds, "-n "+lt.NS+" addr add "+a.String()+" dev "+lt.IfName)
		lt.Addresses = append(lt.Addresses, a.Addr())
	}
	cmds = append(cmds, "-n "+lt.NS+" link set "+lt.IfName+" mtu 1420 up")
	for _, peer := range q.Peers {
		for _, r := range peer.AllowedIPs {
			cmds = append(cmds, "-n "+lt.NS+" route replace "+r.Masked().String()+" dev "+lt.IfName)
		}
	}
	return lt.lab.ipAll(cmds...)
}

// Connect runs `vgate connect` (binary bin) with flags on the config file
// path in the laptop namespace and returns once the interface exists.
func (lt *Laptop) Connect(bin, path string, flags ...string) (*Proc, error) {
	args := append([]string{bin, "connect", "--interface", lt.IfName}, flags...)
	p, err := lt.lab.Start(lt.NS, lt.NS+"-connect.log", append(args, path)...)
	if err != nil {
		return nil, err
	}
	lt.proc = p
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := lt.lab.Run(lt.NS, "ip", "-o", "route", "show", "dev", lt.IfName)
		if strings.TrimSpace(out) != "" {
			return p, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return nil, fmt.Errorf("netlab: vgate connect on %s did not come up:\n%s", lt.NS, p.LogTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Down stops the laptop's WireGuard client (by PID).
func (lt *Laptop) Down() error {
	if lt.proc == nil {
		return nil
	}
	err := lt.proc.Stop()
	lt.proc = nil
	return err
}

// HasInterface reports whether the WireGuard interface exists.
func (lt *Laptop) HasInterface() bool {
	_, err := lt.lab.Run(lt.NS, "ip", "link", "show", lt.IfName)
	return err == nil
}
