#!/usr/bin/env bash
# Installs what the lab, interop and bench tiers need (Debian 12), only if
# something is missing: a machine that has everything never touches apt.
# Idempotent. Needs root to install; without root it only reports.
set -euo pipefail

# command -> Debian package providing it
declare -A need=(
	[ip]=iproute2
	[bridge]=iproute2
	[ping]=iputils-ping
	[nft]=nftables
	[iperf3]=iperf3
	[wg]=wireguard-tools
	[wireguard-go]=wireguard-go
	[sysctl]=procps
	[ps]=procps
	[tcpdump]=tcpdump      # reads `vgate capture` files back (ops lab test)
	[promtool]=prometheus  # `promtool check metrics|rules` (ops tests; ~20 MB, installs in ~12 s)
	[bird]=bird2           # BIRD 2 as the third-party BGP router (TestBIRDInterop)
	[birdc]=bird2
	# FRR as the second third-party router (bgpd, bfdd; zebra installs
	# its routes): routing/interop_*_test.go runs them privately.
	[vtysh]=frr
	[/usr/lib/frr/bgpd]=frr
	[/usr/lib/frr/bfdd]=frr
	[dig]=dnsutils        # queries the gateway's DNS server (TestNames)
	# IPsec peerings (ipsec/): vgate runs charon-systemd; the interop peer
	# is a stock charon configured with swanctl. kernel-libipsec is in
	# libcharon-extra-plugins, openssl/gcm (X25519, AES-GCM) in
	# libstrongswan-standard-plugins, which --no-install-recommends leaves out.
	[charon-systemd]=charon-systemd
	[swanctl]=strongswan-swanctl
	[/usr/lib/ipsec/charon]=strongswan-charon
	[/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so]=libcharon-extra-plugins
	[/usr/lib/ipsec/plugins/libstrongswan-openssl.so]=libstrongswan-standard-plugins
)
packages=(iproute2 iputils-ping nftables iperf3 wireguard-tools wireguard-go procps tcpdump prometheus bird2 frr dnsutils
	charon-systemd strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins)

export PATH="$PATH:/usr/sbin:/sbin"
# have CMD: a command in PATH, or a file given by its absolute path.
have() { if [ "${1#/}" != "$1" ]; then [ -e "$1" ]; else command -v "$1" >/dev/null 2>&1; fi; }
missing=()
for cmd in "${!need[@]}"; do
	have "$cmd" || missing+=("$cmd (${need[$cmd]})")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all present: ${!need[*]}"
	exit 0
fi
echo "deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: not root, cannot install; run scripts/deps.sh as root" >&2
	exit 1
fi
echo "deps: apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages the tests use only as tools (promtool) or run privately (bird,
# frr):
# if this run installs them, their system services must not stay running.
installed_before() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
new_services=()
installed_before prometheus || new_services+=(prometheus)
installed_before bird2 || new_services+=(bird)
installed_before frr || new_services+=(frr)
# strongSwan's packages start a system IKE daemon (strongswan: charon-systemd;
# strongswan-starter: ipsec/charon); vgate runs its own charon.
installed_before charon-systemd || new_services+=(strongswan)
installed_before strongswan-charon || new_services+=(strongswan-starter)
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
if [ ${#new_services[@]} -gt 0 ] && [ -d /run/systemd/system ]; then
	echo "deps: disabling the system services of tool packages: ${new_services[*]}"
	for svc in "${new_services[@]}"; do # one by one: a missing unit must not stop the others
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	done
fi

still=()
for cmd in "${!need[@]}"; do
	have "$cmd" || still+=("$cmd")
done
if [ ${#still[@]} -ne 0 ]; then
	echo "deps: still missing after install: ${still[*]}" >&2
	exit 1
fi
echo "deps: installed"
