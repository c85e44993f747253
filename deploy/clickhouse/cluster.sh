#!/usr/bin/env bash
# A private ClickHouse cluster on this machine, for development and the cluster tests: one
# ZooKeeper and two clickhouse-server processes, one shard with two replicas.
#
# Usage: deploy/clickhouse/cluster.sh COMMAND [ARGS...]
#
#   install        install Debian's zookeeper (and, through clickhouse.sh, clickhouse-server and
#                  clickhouse-client) when missing
#   start          install if needed, then start ZooKeeper and both replicas and wait until each
#                  answers (idempotent: what already runs is left alone)
#   stop           stop both replicas, then ZooKeeper (idempotent)
#   status         say what runs; exit 0 if everything does, 3 if not
#   start-replica N, stop-replica N
#                  start or stop replica N (1 or 2) alone, e.g. to test a failover
#   client N ...   run clickhouse-client against replica N with the remaining arguments
#   env            print `export ...` lines for the cluster's name and addresses
#
# Each replica is a private instance of deploy/clickhouse/clickhouse.sh (its config, users,
# data, logs and ports) under the state directory, plus conf/config.d/cluster.xml written from
# cluster.xml.tmpl: the cluster (remote_servers), the macros {shard} (01) and {replica}
# (replica1, replica2), ZooKeeper and distributed_ddl. ZooKeeper is Debian's, run from
# /usr/share/java as a plain standalone process with its own zoo.cfg and data directory, not as
# the system service.
#
# Environment:
#   CEKAT_CLUSTER_DIR             state directory (default: <repo>/.run/cluster)
#   CEKAT_CLUSTER_NAME            the cluster's name in remote_servers (default cekat_cluster)
#   CEKAT_CLUSTER_ZK_PORT         ZooKeeper's client port (default 19181)
#   CEKAT_CLUSTER_NATIVE_PORT_1, CEKAT_CLUSTER_NATIVE_PORT_2
#                                 native ports of the replicas (default 19101, 19102)
#   CEKAT_CLUSTER_HTTP_PORT_1, CEKAT_CLUSTER_HTTP_PORT_2
#                                 HTTP ports (default 18201, 18202)
#   CEKAT_CLUSTER_INTERSERVER_PORT_1, CEKAT_CLUSTER_INTERSERVER_PORT_2
#                                 interserver ports, for replication (default 19111, 19112)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
CH="$SCRIPT_DIR/clickhouse.sh"

CLUSTER_DIR="${CEKAT_CLUSTER_DIR:-$REPO_DIR/.run/cluster}"
case "$CLUSTER_DIR" in
/*) ;;
*) CLUSTER_DIR="$PWD/$CLUSTER_DIR" ;;
esac
[[ "$CLUSTER_DIR" != *[\|\&\<\>\"\']* ]] || {
	echo "cluster.sh: CEKAT_CLUSTER_DIR must not contain | & < > or quotes: $CLUSTER_DIR" >&2
	exit 1
}
CLUSTER="${CEKAT_CLUSTER_NAME:-cekat_cluster}"
ZK_PORT="${CEKAT_CLUSTER_ZK_PORT:-19181}"
NATIVE_PORT_1="${CEKAT_CLUSTER_NATIVE_PORT_1:-19101}"
NATIVE_PORT_2="${CEKAT_CLUSTER_NATIVE_PORT_2:-19102}"
HTTP_PORT_1="${CEKAT_CLUSTER_HTTP_PORT_1:-18201}"
HTTP_PORT_2="${CEKAT_CLUSTER_HTTP_PORT_2:-18202}"
INTERSERVER_PORT_1="${CEKAT_CLUSTER_INTERSERVER_PORT_1:-19111}"
INTERSERVER_PORT_2="${CEKAT_CLUSTER_INTERSERVER_PORT_2:-19112}"
HOST=127.0.0.1

ZK_DIR="$CLUSTER_DIR/zookeeper"
ZK_PID_FILE="$ZK_DIR/zookeeper.pid"
ZK_CFG="$ZK_DIR/zoo.cfg"
ZK_JAR=/usr/share/java/zookeeper.jar

SCRIPT_NAME=cluster.sh
# shellcheck source=../lib.sh
source "$SCRIPT_DIR/../lib.sh"

[[ "$CLUSTER" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "CEKAT_CLUSTER_NAME must be a plain identifier: $CLUSTER"
for p in "$ZK_PORT" "$NATIVE_PORT_1" "$NATIVE_PORT_2" "$HTTP_PORT_1" "$HTTP_PORT_2" "$INTERSERVER_PORT_1" "$INTERSERVER_PORT_2"; do
	[[ "$p" =~ ^[0-9]+$ ]] || die "not a number: $p"
done

cmd_install() {
	"$CH" install
	if [[ -r "$ZK_JAR" ]] && command -v java >/dev/null 2>&1; then
		return 0
	fi
	# The package brings the server's jars and Java; it starts no service (that is zookeeperd).
	log "installing zookeeper with apt-get"
	local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends zookeeper)
	if ! as_root "${apt[@]}" >&2; then
		log "install failed; running apt-get update and trying again"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		as_root "${apt[@]}" >&2
	fi
	[[ -r "$ZK_JAR" ]] || die "$ZK_JAR still missing after installing zookeeper"
	command -v java >/dev/null 2>&1 || die "java still missing after installing zookeeper"
}

# The environment clickhouse.sh needs to act on replica N.
replica_env() {
	local n="$1" native http inter
	case "$n" in
	1) native="$NATIVE_PORT_1" http="$HTTP_PORT_1" inter="$INTERSERVER_PORT_1" ;;
	2) native="$NATIVE_PORT_2" http="$HTTP_PORT_2" inter="$INTERSERVER_PORT_2" ;;
	*) die "no replica $n: want 1 or 2" ;;
	esac
	echo "CEKAT_CH_DIR=$CLUSTER_DIR/replica$n" "CEKAT_CH_NATIVE_PORT=$native" \
		"CEKAT_CH_HTTP_PORT=$http" "CEKAT_CH_INTERSERVER_PORT=$inter"
}

ch_replica() {
	local n="$1"
	shift
	# shellcheck disable=SC2046 # replica_env prints plain NAME=value words
	env $(replica_env "$n") "$CH" "$@"
}

zk_pid() {
	[[ -f "$ZK_PID_FILE" ]] || return 1
	local pid
	pid="$(tr -cd '0-9' <"$ZK_PID_FILE")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
	# A recycled pid is not ours: ours runs with our zoo.cfg.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$ZK_CFG" || return 1
	echo "$pid"
}

# ZooKeeper answers "imok" to "ruok" once it serves.
zk_answers() {
	local reply=""
	{ exec 3<>"/dev/tcp/$HOST/$ZK_PORT"; } 2>/dev/null || return 1
	printf 'ruok' >&3
	read -r -t 2 reply <&3 || true
	exec 3<&- 3>&-
	[[ "$reply" == imok* ]]
}

zk_start() {
	local pid
	if pid="$(zk_pid)"; then
		return 0
	fi
	if zk_answers; then
		die "something already answers as ZooKeeper on $HOST:$ZK_PORT; stop it or set CEKAT_CLUSTER_ZK_PORT"
	fi
	mkdir -p "$ZK_DIR/data"
	cat >"$ZK_CFG" <<-EOF
		# Written by deploy/clickhouse/cluster.sh: a standalone ZooKeeper for the test cluster.
		tickTime=2000
		dataDir=$ZK_DIR/data
		clientPort=$ZK_PORT
		clientPortAddress=$HOST
		maxClientCnxns=0
		admin.enableServer=false
		4lw.commands.whitelist=ruok,srvr,stat
		autopurge.snapRetainCount=3
		autopurge.purgeInterval=1
	EOF
	log "starting ZooKeeper on $HOST:$ZK_PORT, state in $ZK_DIR"
	(
		cd "$ZK_DIR"
		exec setsid java -Xmx256m -cp "$ZK_JAR" org.apache.zookeeper.server.ZooKeeperServerMain "$ZK_CFG"
	) </dev/null >>"$ZK_DIR/zookeeper.log" 2>&1 &
	local launcher=$! i
	echo "$launcher" >"$ZK_PID_FILE"
	for ((i = 0; i < 120; i++)); do
		zk_answers && return 0
		if ! kill -0 "$launcher" 2>/dev/null; then
			tail -n 30 "$ZK_DIR/zookeeper.log" >&2 || true
			die "ZooKeeper exited during start-up"
		fi
		sleep 0.5
	done
	tail -n 30 "$ZK_DIR/zookeeper.log" >&2 || true
	die "ZooKeeper did not answer on $HOST:$ZK_PORT within 60s"
}

zk_stop() {
	local pid i
	if ! pid="$(zk_pid)"; then
		rm -f "$ZK_PID_FILE"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 40; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$ZK_PID_FILE"
	echo "zookeeper: stopped (pid $pid)"
}

write_replica_config() {
	local n="$1" dir="$CLUSTER_DIR/replica$n/conf/config.d" subst
	mkdir -p "$dir"
	subst="s|@@CLUSTER@@|$CLUSTER|g;s|@@PORT_1@@|$NATIVE_PORT_1|g;s|@@PORT_2@@|$NATIVE_PORT_2|g"
	subst+=";s|@@ZK_PORT@@|$ZK_PORT|g;s|@@REPLICA@@|replica$n|g"
	sed "$subst" "$SCRIPT_DIR/cluster.xml.tmpl" >"$dir/cluster.xml.new"
	mv "$dir/cluster.xml.new" "$dir/cluster.xml"
}

cmd_start_replica() {
	local n="$1"
	write_replica_config "$n"
	ch_replica "$n" start | sed "s/^clickhouse:/clickhouse replica$n:/"
}

cmd_start() {
	cmd_install
	zk_start
	echo "zookeeper: running (pid $(zk_pid)) on $HOST:$ZK_PORT"
	cmd_start_replica 1
	cmd_start_replica 2
}

cmd_stop() {
	ch_replica 1 stop | sed 's/^clickhouse:/clickhouse replica1:/'
	ch_replica 2 stop | sed 's/^clickhouse:/clickhouse replica2:/'
	zk_stop
}

cmd_status() {
	local rc=0 pid
	if pid="$(zk_pid)" && zk_answers; then
		echo "zookeeper: running (pid $pid) on $HOST:$ZK_PORT"
	else
		echo "zookeeper: not running"
		rc=3
	fi
	ch_replica 1 status | sed 's/^clickhouse:/clickhouse replica1:/' || rc=3
	ch_replica 2 status | sed 's/^clickhouse:/clickhouse replica2:/' || rc=3
	return "$rc"
}

cmd_env() {
	echo "export CEKAT_ARCHIVER_TEST_CLUSTER=$CLUSTER"
	echo "export CEKAT_ARCHIVER_TEST_CLUSTER_ADDRS=$HOST:$NATIVE_PORT_1,$HOST:$NATIVE_PORT_2"
}

main() {
	local cmd="${1:-}"
	[[ $# -gt 0 ]] && shift
	case "$cmd" in
	install) cmd_install ;;
	start) cmd_start ;;
	stop) cmd_stop ;;
	status) cmd_status ;;
	start-replica) cmd_start_replica "${1:?replica number (1 or 2)}" ;;
	stop-replica) ch_replica "${1:?replica number (1 or 2)}" stop | sed "s/^clickhouse:/clickhouse replica$1:/" ;;
	client)
		local n="${1:?replica number (1 or 2)}"
		shift
		ch_replica "$n" client "$@"
		;;
	env) cmd_env ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
