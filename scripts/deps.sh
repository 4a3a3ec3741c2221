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
	[dig]=dnsutils        # queries the gateway's DNS server (TestNames)
)
packages=(iproute2 iputils-ping nftables iperf3 wireguard-tools wireguard-go procps tcpdump prometheus bird2 dnsutils)

export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for cmd in "${!need[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd (${need[$cmd]})")
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
# Packages the tests use only as tools (promtool) or run privately (bird):
# if this run installs them, their system services must not stay running.
installed_before() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
new_services=()
installed_before prometheus || new_services+=(prometheus)
installed_before bird2 || new_services+=(bird)
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
if [ ${#new_services[@]} -gt 0 ] && [ -d /run/systemd/system ]; then
	echo "deps: disabling the system services of tool packages: ${new_services[*]}"
	systemctl disable --now "${new_services[@]}" >/dev/null 2>&1 || true
fi

still=()
for cmd in "${!need[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || still+=("$cmd")
done
if [ ${#still[@]} -ne 0 ]; then
	echo "deps: still missing after install: ${still[*]}" >&2
	exit 1
fi
echo "deps: installed"
