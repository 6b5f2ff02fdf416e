#!/usr/bin/env bash
# conformance/run.sh: run OpenStack's own API tests for networking (Tempest's
# tempest.api.network and neutron-tempest-plugin's api tests) against
# neutrino behind a real Keystone, all on 127.0.0.1, and fail when a test
# listed in conformance/expected-pass.txt does not pass. `make conformance`
# runs it; docs/conformance.md records the results.
#
# What it does, each step stopping the run with a message when it fails:
#   1. installs the Debian packages it needs when they are missing;
#   2. builds neutrino and the two helpers of this directory (keystone, report);
#   3. starts a private Keystone (SQLite, uwsgi) whose catalog lists neutrino
#      as the network service, then `neutrino up --auth keystone` (the server
#      and an agent with every role; AGENTS=0: `neutrino server` alone);
#   4. creates the external flat network `public` (and its subnet) that the
#      floating IP tests need, as an admin;
#   5. writes a Tempest workspace whose tempest.conf describes this cloud,
#      with the extension list taken from neutrino's GET /v2.0/extensions;
#   6. runs the tests and prints passed / failed / skipped per suite, the
#      failing test ids and any regression against expected-pass.txt.
# Everything it started is stopped on exit, by process id.
#
# Settings (environment):
#   CONCURRENCY      Tempest workers (default 6: the tests mostly wait, see
#                    docs/conformance.md)
#   TESTS            test selection regex (default: both API suites)
#   EXCLUDE          exclusion regex (default: scenario tests)
#   RUN_DIR          where everything of the run goes (default
#                    conformance/runs/<UTC time>; not committed)
#   UPDATE_EXPECTED  1: rewrite expected-pass.txt from this run's passes
#                    instead of checking against it
#   REV              test neutrino as committed at this git revision (e.g.
#                    HEAD) instead of the working tree
#   SKIP_SUBNET_DELETE_SLEEP
#                    1 (default): drop the 10 s sleep Debian's tempest adds
#                    before each subnet delete, in Tempest's processes only
#                    (conformance/python/sitecustomize.py); 0 keeps it
# Exit status: 0 no regression, 1 regressions, 2 the run itself failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/conformance
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
CONCURRENCY=${CONCURRENCY:-6}
TESTS=${TESTS:-'^(tempest\.api\.network|neutron_tempest_plugin\.api)\.'}
EXCLUDE=${EXCLUDE:-'\.scenario\.'}
RUN_DIR=${RUN_DIR:-$HERE/runs/$(date -u +%Y%m%dT%H%M%SZ)}
UPDATE_EXPECTED=${UPDATE_EXPECTED:-0}
REV=${REV:-}
SKIP_SUBNET_DELETE_SLEEP=${SKIP_SUBNET_DELETE_SLEEP:-1}
EXPECTED=$HERE/expected-pass.txt

# The go toolchain, found before PATH changes below.
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
# Debian's python3 (with the OpenStack modules) must win over a pyenv one:
# tempest runs its workers with $PYTHON.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PYTHON=/usr/bin/python3

log() { printf '[conformance %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	printf '[conformance] ERROR: %s\n' "$*" >&2
	exit 2
}

# ------------------------------------------------------------------ processes
# Every process started here is recorded and stopped on exit, last first.
PIDS=()
NAMES=()
stop_all() {
	local i pid
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		kill -0 "$pid" 2>/dev/null || continue
		log "stopping ${NAMES[i]} (pid $pid)"
		# Each was started by setsid as the leader of its own process
		# group: signalling the group reaches its workers too.
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 40); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "${NAMES[i]} (pid $pid) did not stop in 20 s: killing it"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	# The all-in-one's agents leave namespaces, bridges and OVS state:
	# `neutrino down` removes what its `up` made.
	if [[ -n ${NEUTRINO_STATE:-} && -x ${NEUTRINO_BIN:-} ]]; then
		"$NEUTRINO_BIN" down --state-dir "$NEUTRINO_STATE" >>"$RUN_DIR/logs/neutrino-down.log" 2>&1 ||
			log "neutrino down failed; see $RUN_DIR/logs/neutrino-down.log"
	fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# started NAME PID: remember a background process (started with setsid) to
# stop on exit.
started() {
	NAMES+=("$1")
	PIDS+=("$2")
}

# alive_or_die NAME PID LOG: the process must still be running.
alive_or_die() {
	kill -0 "$2" 2>/dev/null && return 0
	tail -n 30 "$3" >&2 || true
	die "$1 exited; its log: $3"
}

# free_port: a TCP port of 127.0.0.1 nothing listens on.
free_port() {
	local port
	for _ in $(seq 1 100); do
		port=$((20000 + RANDOM % 30000))
		if ! (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# ------------------------------------------------------------------ packages
install_packages() {
	local want=(tempest neutron-tempest-plugin python3-openstackclient keystone
		uwsgi-core uwsgi-plugin-python3 curl jq)
	local missing=() pkg
	for pkg in "${want[@]}"; do
		[[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]] ||
			missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0
	((EUID == 0)) || die "packages missing: ${missing[*]}; install them as root"
	log "installing ${missing[*]}"
	# Keep the packages' scripts from starting system services (Keystone
	# under Apache): the run starts its own, on ports of its own.
	local policy=/usr/sbin/policy-rc.d added=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# conformance/run.sh: no services during install\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		added=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" ||
		rc=$?
	((added)) && rm -f "$policy"
	((rc == 0)) || die "apt-get install ${missing[*]} failed"
}

# ------------------------------------------------------------------ cloud
# keystone_token: a project-scoped token of the admin.
keystone_token() {
	local body
	body=$(jq -n --arg u "$ADMIN_USER" --arg p "$ADMIN_PASSWORD" --arg pr "$ADMIN_PROJECT" --arg d "$ADMIN_DOMAIN" \
		'{auth: {identity: {methods: ["password"], password: {user: {name: $u, password: $p, domain: {name: $d}}}},
		  scope: {project: {name: $pr, domain: {name: $d}}}}}')
	curl -sS -o /dev/null -D - -H 'Content-Type: application/json' -d "$body" \
		"$KEYSTONE_URL/auth/tokens?nocatalog" |
		awk 'tolower($1) == "x-subject-token:" { sub(/\r$/, "", $2); print $2 }'
}

# api METHOD PATH [JSON]: call neutrino as the admin; prints the answer's
# body, fails (printing it to stderr) unless the status is 2xx.
api() {
	local out status
	out=$(mktemp)
	status=$(curl -sS -o "$out" -w '%{http_code}' -X "$1" -H "X-Auth-Token: $TOKEN" \
		-H 'Content-Type: application/json' ${3:+-d "$3"} "$NEUTRINO_URL$2") || status=000
	if [[ $status != 2* ]]; then
		printf '%s %s: HTTP %s: %s\n' "$1" "$2" "$status" "$(head -c 500 "$out")" >&2
		rm -f "$out"
		return 1
	fi
	cat "$out"
	rm -f "$out"
}

# create_public_network: the external flat network floating IPs come from,
# as devstack makes it. Prints its id, or nothing when neutrino refused.
create_public_network() {
	local net_id
	net_id=$(api POST /v2.0/networks '{"network": {"name": "public", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "public"}}' | jq -r .network.id) || {
		log "WARNING: could not create the public network: floating IP tests will fail"
		return 0
	}
	api POST /v2.0/subnets "$(jq -n --arg net "$net_id" '{subnet: {name: "public-subnet", network_id: $net,
		ip_version: 4, cidr: "172.24.4.0/24", gateway_ip: "172.24.4.1", enable_dhcp: false,
		allocation_pools: [{start: "172.24.4.10", end: "172.24.4.250"}]}}')" >/dev/null ||
		log "WARNING: could not create public-subnet: floating IP tests will fail"
	echo "$net_id"
}

# ------------------------------------------------------------------ tempest
# has_ext ALIAS: "true" when neutrino lists the extension, else "false".
has_ext() { [[ ",$EXTENSIONS," == *",$1,"* ]] && echo true || echo false; }

# write_tempest_conf PATH: the tempest.conf of this cloud.
write_tempest_conf() {
	cat >"$1" <<EOF
# Written by conformance/run.sh for the cloud of run $RUN_DIR:
# Keystone $KEYSTONE_URL, neutrino $NEUTRINO_URL (the catalog's network service).
[DEFAULT]
log_dir = $WORKSPACE/logs
log_file = tempest.log

[oslo_concurrency]
lock_path = $WORKSPACE/lock

[auth]
# Each test class gets its own project and users, made by the admin.
use_dynamic_credentials = true
create_isolated_networks = false
admin_username = $ADMIN_USER
admin_password = $ADMIN_PASSWORD
admin_project_name = $ADMIN_PROJECT
admin_domain_name = $ADMIN_DOMAIN
default_credentials_domain_name = $ADMIN_DOMAIN

[identity]
auth_version = v3
uri_v3 = $KEYSTONE_URL
region = $REGION
v3_endpoint_type = public

[identity-feature-enabled]
api_v2 = false
api_v3 = true

[service_available]
# Only networking: no instances, images or volumes.
neutron = true
nova = false
glance = false
cinder = false
swift = false
heat = false
horizon = false
designate = false
octavia = false

[network]
region = $REGION
endpoint_type = publicURL
public_network_id = $PUBLIC_NET
floating_network_name = public
project_network_cidr = 10.100.0.0/16
project_network_mask_bits = 28
project_network_v6_cidr = 2001:db8::/48
project_network_v6_mask_bits = 64
# No dataplane is tested: nothing pings the networks.
project_networks_reachable = false
shared_physical_network = false
build_timeout = 60
build_interval = 1

[network-feature-enabled]
# What neutrino's GET /v2.0/extensions lists: the rest is skipped.
api_extensions = $EXTENSIONS
ipv6 = true
ipv6_subnet_attributes = true
port_security = $(has_ext port-security)
floating_ips = $(has_ext router)

[neutron_plugin_options]
# neutrino's type drivers and its default provider VLAN physnet.
available_type_drivers = flat,vlan,vxlan,gre,geneve
provider_vlans = physnet1
specify_floating_ip_address_available = true

[validation]
run_validation = false
EOF
}

# ------------------------------------------------------------------ main
main() {
	mkdir -p "$RUN_DIR"/{bin,logs,results}
	RUN_DIR=$(cd "$RUN_DIR" && pwd)
	local t0=$SECONDS
	log "run directory $RUN_DIR"
	install_packages

	local src=$ROOT version
	version=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
	if [[ -n $REV ]]; then
		version=$(git -C "$ROOT" rev-parse --short "$REV") || die "no revision $REV"
		src=$RUN_DIR/src
		mkdir -p "$src"
		git -C "$ROOT" archive --format=tar "$REV" | tar -x -C "$src" || die "git archive $REV failed"
	fi
	log "building neutrino $version and the harness helpers"
	(cd "$src" && "$GO" build -o "$RUN_DIR/bin/neutrino" ./cmd/neutrino) || die "go build of neutrino failed"
	(cd "$ROOT" && "$GO" build -o "$RUN_DIR/bin/keystone" ./conformance/keystone &&
		"$GO" build -o "$RUN_DIR/bin/report" ./conformance/report) || die "go build of the helpers failed"

	local port
	port=$(free_port) || die "no free port for neutrino"
	NEUTRINO_URL=http://127.0.0.1:$port

	log "starting Keystone (catalog: network -> $NEUTRINO_URL)"
	setsid "$RUN_DIR/bin/keystone" -dir "$RUN_DIR" -network-url "$NEUTRINO_URL" -env "$RUN_DIR/keystone.env" \
		>"$RUN_DIR/logs/keystone-helper.log" 2>&1 &
	local ks_pid=$!
	started keystone "$ks_pid"
	for _ in $(seq 1 600); do
		[[ -s $RUN_DIR/keystone.env ]] && break
		alive_or_die keystone "$ks_pid" "$RUN_DIR/logs/keystone-helper.log"
		sleep 0.5
	done
	[[ -s $RUN_DIR/keystone.env ]] || die "Keystone not ready after 300 s; see $RUN_DIR/logs/keystone-helper.log"
	# shellcheck source=/dev/null
	source "$RUN_DIR/keystone.env"
	log "Keystone $KEYSTONE_URL ready after $((SECONDS - t0)) s"

	mkdir -p "$RUN_DIR/neutrino"
	if [[ ${AGENTS:-1} == 1 ]]; then
		# The all-in-one: the server and an agent with every role (l2,
		# dhcp, l3, metadata) on an Open vSwitch of its own, for the tests
		# that need live agents (agent management, DHCP and L3 agent
		# scheduling, router interface status).
		log "starting neutrino up --auth keystone (server and agents) on $NEUTRINO_URL"
		NEUTRINO_BIN=$RUN_DIR/bin/neutrino NEUTRINO_STATE=$RUN_DIR/neutrino
		setsid "$RUN_DIR/bin/neutrino" up --auth keystone --keystone-url "$KEYSTONE_URL" \
			--listen "127.0.0.1:$port" --nats-listen "" --state-dir "$RUN_DIR/neutrino" >"$RUN_DIR/logs/neutrino.log" 2>&1 &
	else
		log "starting neutrino server --auth keystone on $NEUTRINO_URL"
		setsid "$RUN_DIR/bin/neutrino" server --auth keystone --keystone-url "$KEYSTONE_URL" \
			--listen "127.0.0.1:$port" --state-dir "$RUN_DIR/neutrino" >"$RUN_DIR/logs/neutrino.log" 2>&1 &
	fi
	local nt_pid=$!
	started neutrino "$nt_pid"
	for _ in $(seq 1 120); do
		curl -fsS -o /dev/null "$NEUTRINO_URL/healthz" 2>/dev/null && break
		alive_or_die neutrino "$nt_pid" "$RUN_DIR/logs/neutrino.log"
		sleep 0.5
	done
	curl -fsS -o /dev/null "$NEUTRINO_URL/healthz" || die "neutrino does not answer; see $RUN_DIR/logs/neutrino.log"

	TOKEN=$(keystone_token)
	[[ -n $TOKEN ]] || die "Keystone issued no admin token"
	api GET /v2.0/extensions | jq -r '.extensions[].alias' | sort >"$RUN_DIR/extensions.txt" ||
		die "GET /v2.0/extensions failed"
	EXTENSIONS=$(paste -sd, "$RUN_DIR/extensions.txt")
	log "neutrino lists $(wc -l <"$RUN_DIR/extensions.txt") extensions"
	PUBLIC_NET=$(create_public_network)
	log "public network: ${PUBLIC_NET:-none}"

	WORKSPACE=$RUN_DIR/tempest
	# tempest init keeps a registry of workspaces and refuses a name it has
	# seen: each run has its own registry.
	(cd "$RUN_DIR" && tempest init --workspace-path "$RUN_DIR/tempest-workspaces.yaml" "$WORKSPACE" \
		>"$RUN_DIR/logs/tempest-init.log" 2>&1) || die "tempest init failed; see $RUN_DIR/logs/tempest-init.log"
	mkdir -p "$WORKSPACE/lock" "$WORKSPACE/logs"
	write_tempest_conf "$WORKSPACE/etc/tempest.conf"

	cd "$WORKSPACE"
	tempest run --list-tests --regex "$TESTS" --exclude-regex "$EXCLUDE" >"$RUN_DIR/logs/tempest-list.log" 2>&1 ||
		die "listing the tests failed; see $RUN_DIR/logs/tempest-list.log"
	grep -E '^[a-z_]+\.' "$RUN_DIR/logs/tempest-list.log" >"$RUN_DIR/selected-tests.txt" ||
		die "no test matches TESTS='$TESTS' (EXCLUDE='$EXCLUDE')"
	local selected
	selected=$(wc -l <"$RUN_DIR/selected-tests.txt")
	log "running $selected tests with $CONCURRENCY workers (progress: $RUN_DIR/logs/tempest-run.log)"
	local t1=$SECONDS tempest_rc=0 tempest_env=()
	if [[ $SKIP_SUBNET_DELETE_SLEEP == 1 ]]; then
		tempest_env=("PYTHONPATH=$HERE/python${PYTHONPATH:+:$PYTHONPATH}")
		log "without the 10 s sleep before subnet deletes (SKIP_SUBNET_DELETE_SLEEP=0 keeps it)"
	fi
	# In the background, so that a signal to this script is handled at
	# once (bash runs traps only between foreground commands).
	env "${tempest_env[@]}" setsid tempest run --regex "$TESTS" --exclude-regex "$EXCLUDE" --concurrency "$CONCURRENCY" \
		>"$RUN_DIR/logs/tempest-run.log" 2>&1 &
	local tempest_pid=$!
	started tempest "$tempest_pid"
	wait "$tempest_pid" || tempest_rc=$?
	local tests_took=$((SECONDS - t1))
	stestr last --subunit >"$RUN_DIR/results/tempest.subunit" 2>"$RUN_DIR/logs/stestr-last.log" ||
		die "no results from stestr (tempest exit status $tempest_rc); see $RUN_DIR/logs/tempest-run.log"
	cd "$ROOT"

	{
		echo "conformance run $STARTED ($RUN_DIR)"
		echo "command: ${CONFORMANCE_COMMAND:-conformance/run.sh} CONCURRENCY=$CONCURRENCY" \
			"SKIP_SUBNET_DELETE_SLEEP=$SKIP_SUBNET_DELETE_SLEEP${REV:+ REV=$REV}"
		echo "neutrino $version;" \
			"tempest $(dpkg-query -W -f='${Version}' tempest);" \
			"neutron-tempest-plugin $(dpkg-query -W -f='${Version}' neutron-tempest-plugin)"
		echo "tests: $TESTS  exclude: $EXCLUDE  selected: $selected"
		echo "tests took $tests_took s; whole run $((SECONDS - t0)) s so far"
		echo
	} >"$RUN_DIR/results/run.txt"
	cat "$RUN_DIR/results/run.txt"
	local report_args=(-subunit "$RUN_DIR/results/tempest.subunit" -selected "$RUN_DIR/selected-tests.txt"
		-expected "$EXPECTED" -out "$RUN_DIR/results")
	[[ $UPDATE_EXPECTED == 1 ]] && report_args+=(-update-expected)
	local rc=0
	"$RUN_DIR/bin/report" "${report_args[@]}" || rc=$?
	log "results in $RUN_DIR/results (failures.txt has the reasons); took $((SECONDS - t0)) s"
	return "$rc"
}

# One compound command, read whole before it runs: editing this file during
# a run cannot change what the run does next.
{
	main "$@"
	exit
}
