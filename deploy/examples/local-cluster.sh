#!/usr/bin/env bash
# local-cluster.sh: a 3-voter ringmesh cluster and one agent on this machine,
# on loopback, for trying failover without three servers.
#
#   voter   node ID        NATS client  NATS cluster  HTTP
#   1       local-voter1   4222         6222          8077
#   2       local-voter2   4223         6223          8078
#   3       local-voter3   4224         6224          8079
#   agent   local-agent1   connects to all three
#
# Each coordinator embeds one member of a 3-node NATS JetStream cluster
# (streams with 3 replicas) and keeps its data in its own --data-dir under a
# temporary directory. Ctrl-C stops everything: the agent first (it says bye),
# then the coordinators, and removes the temporary directory unless
# KEEP_DATA=1.
#
# Binaries: ./bin/coordinator, ./bin/agent and ./bin/meshctl when all exist
# (or BIN_DIR=<dir>); otherwise they are built once from ./cmd into the
# temporary directory (what `go run` would do, without a `go` parent process
# between this script and each binary, so signals reach the binaries).
#
# Usage: deploy/examples/local-cluster.sh       (from anywhere in the repo)
set -euo pipefail

readonly NATS_PORTS=(4222 4223 4224)
readonly CLUSTER_PORTS=(6222 6223 6224)
readonly HTTP_PORTS=(8077 8078 8079)
readonly VOTERS=(local-voter1 local-voter2 local-voter3)
readonly AGENT=local-agent1
readonly STOP_TIMEOUT=45 # seconds before a process that ignores SIGTERM is killed

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd -- "$repo_root"

log() { printf '%s local-cluster: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/ringmesh-local.XXXXXX")
declare -A pids=() # name -> pid

# stop NAME...: SIGTERM to each, then wait for all of them; whatever is still
# running after STOP_TIMEOUT gets SIGKILL. The coordinators are stopped
# together: one by one, the last would shut down without a quorum.
stop() {
	local name pid waited=0 running=() stopped=()
	for name in "$@"; do
		pid=${pids[$name]:-}
		[[ -n $pid ]] || continue
		unset 'pids[$name]'
		if kill -0 "$pid" 2>/dev/null; then
			log "stopping $name (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			running+=("$pid")
		fi
		stopped+=("$pid")
	done
	while ((${#running[@]} > 0)); do
		local still=()
		for pid in "${running[@]}"; do
			kill -0 "$pid" 2>/dev/null && still+=("$pid")
		done
		running=("${still[@]}")
		((${#running[@]} > 0)) || break
		if ((waited >= STOP_TIMEOUT * 5)); then
			log "still running after ${STOP_TIMEOUT}s, killing: ${running[*]}"
			kill -KILL "${running[@]}" 2>/dev/null || true
			break
		fi
		sleep 0.2
		waited=$((waited + 1))
	done
	for pid in "${stopped[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}

# start NAME CMD...: run CMD in the background with its output in
# $work/logs/NAME.log. Job control is on while it forks, so CMD gets a process
# group of its own: a Ctrl-C on the terminal reaches only this script, whose
# trap then stops everything in order (agent first).
start() {
	local name=$1
	shift
	set -m
	"$@" </dev/null >"$work/logs/$name.log" 2>&1 &
	pids[$name]=$!
	set +m
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	stop "$AGENT"
	stop "${VOTERS[@]}"
	if [[ ${KEEP_DATA:-0} == 1 ]]; then
		log "data and logs kept in $work"
	else
		rm -rf -- "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for port in "${NATS_PORTS[@]}" "${CLUSTER_PORTS[@]}" "${HTTP_PORTS[@]}"; do
	if port_in_use "$port"; then
		die "127.0.0.1:$port is already in use (another ringmesh, or nats-server?)"
	fi
done

bin=${BIN_DIR:-$repo_root/bin}
if [[ ! -x $bin/coordinator || ! -x $bin/agent || ! -x $bin/meshctl ]]; then
	command -v go >/dev/null || die "no binaries in $bin and no go toolchain to build them"
	bin=$work/bin
	log "building coordinator, agent and meshctl into $bin"
	mkdir -p -- "$bin"
	go build -o "$bin/" ./cmd/coordinator ./cmd/agent ./cmd/meshctl
fi

# The inventory of this local cluster: the voters and the agent's node.
inventory=$work/distributed_hosts.yaml
cat >"$inventory" <<EOF
cluster_name: ringmesh-local
p2p_voters: [${VOTERS[0]}, ${VOTERS[1]}, ${VOTERS[2]}]
hosts:
  ${VOTERS[0]}: {provider: local, ssh_host: 127.0.0.1, role: coordinator, status: ready}
  ${VOTERS[1]}: {provider: local, ssh_host: 127.0.0.1, role: coordinator, status: ready}
  ${VOTERS[2]}: {provider: local, ssh_host: 127.0.0.1, role: coordinator, status: ready}
  ${AGENT}: {provider: local, ssh_host: 127.0.0.1, role: gpu_selfplay, status: ready, is_ephemeral: false}
EOF

# One issuer store for the cluster (operator, accounts, CA): every voter
# uses it (--auth-dir); the agent and meshctl get credentials from it.
auth=$work/auth
"$bin/meshctl" creds init --store "$auth" >/dev/null
"$bin/meshctl" creds issue --store "$auth" --role node --name "$AGENT" --out "$work/$AGENT.creds" >/dev/null
"$bin/meshctl" creds issue --store "$auth" --role admin --name operator --out "$work/operator.creds" >/dev/null
cp -- "$auth/ca.pem" "$work/ca.pem"

mkdir -p -- "$work/logs"
nats_urls=""
for i in 0 1 2; do
	nats_urls+="${nats_urls:+,}nats://127.0.0.1:${NATS_PORTS[i]}"
done

# Start the three coordinators without waiting between them: the JetStream
# cluster needs a quorum (two of three) before its replicated streams exist.
for i in 0 1 2; do
	name=${VOTERS[i]}
	routes=""
	for j in 0 1 2; do
		((j == i)) && continue
		routes+="${routes:+,}nats-route://127.0.0.1:${CLUSTER_PORTS[j]}"
	done
	log "starting $name: NATS 127.0.0.1:${NATS_PORTS[i]}, cluster :${CLUSTER_PORTS[i]}, HTTP :${HTTP_PORTS[i]}"
	start "$name" "$bin/coordinator" \
		--name "$name" \
		--inventory "$inventory" \
		--data-dir "$work/$name" \
		--nats-listen "127.0.0.1:${NATS_PORTS[i]}" \
		--nats-cluster-listen "127.0.0.1:${CLUSTER_PORTS[i]}" \
		--nats-routes "$routes" \
		--replicas 3 \
		--auth-dir "$auth" \
		--http "127.0.0.1:${HTTP_PORTS[i]}"
done

# Wait until every coordinator reports ready (or at least listens).
ready() {
	if command -v curl >/dev/null; then
		curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/readyz" 2>/dev/null
	else
		port_in_use "$1"
	fi
}
for i in 0 1 2; do
	name=${VOTERS[i]}
	for ((t = 0; ; t++)); do
		kill -0 "${pids[$name]}" 2>/dev/null || die "$name exited; see $work/logs/$name.log:
$(tail -n 20 -- "$work/logs/$name.log")"
		ready "${HTTP_PORTS[i]}" && break
		((t < 300)) || die "$name not ready after 60s; see $work/logs/$name.log"
		sleep 0.2
	done
	log "$name ready"
done

log "starting $AGENT"
start "$AGENT" "$bin/agent" \
	--node "$AGENT" \
	--inventory "$inventory" \
	--nats-url "$nats_urls" \
	--creds "$work/$AGENT.creds" \
	--ca "$work/ca.pem" \
	--state-dir "$work/$AGENT" \
	--heartbeat 5s

cat <<EOF

ringmesh local cluster is up (data and logs: $work).

  status:      RINGMESH_NATS_URL=$nats_urls RINGMESH_CREDS=$work/operator.creds \\
                 $bin/meshctl status       (ca.pem next to the creds file is pinned)
  status page: http://127.0.0.1:${HTTP_PORTS[0]}/  (also :${HTTP_PORTS[1]}, :${HTTP_PORTS[2]})
  logs:        tail -F $work/logs/*.log
  failover:    kill -TERM ${pids[${VOTERS[0]}]}   (stops ${VOTERS[0]}; the other two keep the quorum)

Ctrl-C stops everything.
EOF

# Run until Ctrl-C. A process that exits on its own (or that you killed to
# watch a failover) is reported once; the others keep running.
declare -A reported=()
while :; do
	alive=0
	for name in "${!pids[@]}"; do
		if kill -0 "${pids[$name]}" 2>/dev/null; then
			alive=$((alive + 1))
		elif [[ -z ${reported[$name]:-} ]]; then
			reported[$name]=1
			log "$name (pid ${pids[$name]}) has exited; last lines of $work/logs/$name.log:"
			tail -n 20 -- "$work/logs/$name.log" >&2 || true
		fi
	done
	((alive > 0)) || die "every process has exited"
	sleep 1
done
