#!/usr/bin/env bash
# install-runtime-deps.sh installs the Debian packages `neutrino up` needs at
# run time on a Debian 12 machine: Open vSwitch (the all-in-one starts its own
# ovsdb-server and ovs-vswitchd when no system one runs), iproute2 (`ip netns
# exec` for the VMs), busybox (the VMs' DHCP client, udhcpc) and ping.
# Packages named as arguments are installed with them, in the same apt-get
# run: scripts/install-deps.sh adds those the build and tests need.
#
# Idempotent: nothing happens when everything is installed; `apt-get update`
# runs only when something is missing. The package scripts are kept from
# starting Debian's services (openvswitch-switch, postgresql, keystone:
# policy-rc.d), so neutrino's own daemons and the tests' private instances
# serve instead.
set -euo pipefail

packages=(
	openvswitch-switch
	iproute2
	busybox
	iputils-ping
	"$@"
)

log() { printf 'install-runtime-deps: %s\n' "$*" >&2; }

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ "$status" != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done
((${#missing[@]} > 0)) || exit 0

if ! command -v apt-get >/dev/null; then
	log "no apt-get: install ${missing[*]} (or their equivalents) by hand"
	exit 1
fi
sudo=()
if ((EUID != 0)); then
	if ! command -v sudo >/dev/null; then
		log "not root and no sudo: install ${missing[*]} by hand"
		exit 1
	fi
	sudo=(sudo)
fi
log "installing: ${missing[*]}"

# An existing policy-rc.d is left as it is; one we add is removed again.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
	printf '#!/bin/sh\n# added by neutrino scripts/install-runtime-deps.sh\nexit 101\n' |
		"${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 0755 "$policy"
	trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi

"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	--no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}"
