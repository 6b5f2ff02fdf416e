#!/usr/bin/env bash
# install-deps.sh installs what neutrino's build and tests need on a Debian 12
# machine: the Debian packages the integration tests drive (PostgreSQL,
# Keystone, the openstack CLI, Open vSwitch, network tools) and the Go modules.
#
# It is idempotent: the Debian packages are installed by
# install-runtime-deps.sh (what `neutrino up` runs with, plus the ones named
# here), which leaves installed packages alone, runs `apt-get update` only
# when something is missing and keeps Debian's system services from starting
# (policy-rc.d): tests start private instances.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'install-deps: %s\n' "$*" >&2; }

# On top of the runtime packages: the build, the servers and clients the
# integration tests drive, and the tools they capture and query with.
bash scripts/install-runtime-deps.sh \
	make \
	postgresql \
	python3-openstackclient \
	keystone \
	tcpdump \
	nftables \
	curl \
	jq

log "go mod download"
go mod download
