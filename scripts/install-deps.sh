#!/usr/bin/env bash
# install-deps.sh installs what neutrino's build and tests need on a Debian 12
# machine: the Debian packages the integration tests drive (PostgreSQL,
# Keystone, the openstack CLI, Open vSwitch, network tools) and the Go modules.
#
# It is idempotent: packages already installed are left alone, and
# `apt-get update` runs only when something is missing. Debian system services
# are not started by the install (policy-rc.d); tests start private instances.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(
	make
	postgresql
	python3-openstackclient
	keystone
	openvswitch-switch
	iproute2
	iputils-ping
	busybox
	tcpdump
	nftables
	curl
	jq
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ "$status" != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} > 0)); then
	log "installing: ${missing[*]}"
	sudo=()
	if ((EUID != 0)); then
		if ! command -v sudo >/dev/null; then
			log "not root and no sudo: install ${missing[*]} by hand"
			exit 1
		fi
		sudo=(sudo)
	fi

	# Keep package scripts from starting system services (postgresql@15-main,
	# openvswitch, keystone): tests run their own private instances. An
	# existing policy-rc.d is left as it is; one we add is removed again.
	policy=/usr/sbin/policy-rc.d
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\n# added by neutrino scripts/install-deps.sh\nexit 101\n' |
			"${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 0755 "$policy"
		trap '"${sudo[@]}" rm -f "$policy"' EXIT
	fi

	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}"
else
	log "Debian packages already installed"
fi

log "go mod download"
go mod download
