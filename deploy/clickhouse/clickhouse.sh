#!/usr/bin/env bash
# A private ClickHouse server for development and tests.
#
# Usage: deploy/clickhouse/clickhouse.sh COMMAND [ARGS...]
#
#   install   install Debian's clickhouse-server and clickhouse-client if the server is missing
#   start     install if needed, then start the private instance in the background and wait
#             until it answers (idempotent: an instance already running is left alone)
#   stop      stop the private instance and wait for it to exit (idempotent)
#   restart   stop, then start
#   status    say whether the private instance runs; exit 0 if it does, 3 if not
#   client    run clickhouse-client against the private instance with the remaining arguments
#   env       print `export ...` lines for the instance's address, for `eval "$(... env)"`
#   logs      print the tail of the server log (N lines, default 50)
#
# The instance has its own config (written from config.xml.tmpl and users.xml.tmpl beside this
# script), data, log, tmp and user_files directories, all under one state directory, and its own
# ports, so it never collides with a system-wide ClickHouse nor reads /etc/clickhouse-server.
# Its only user is `default`, without a password, reachable from localhost only.
#
# Environment:
#   CEKAT_CH_DIR               state directory (default: <repo>/.run/clickhouse)
#   CEKAT_CH_NATIVE_PORT       native protocol port (default 19000)
#   CEKAT_CH_HTTP_PORT         HTTP port (default 18123)
#   CEKAT_CH_INTERSERVER_PORT  interserver HTTP port (default 19009)
#   CEKAT_CH_START_TIMEOUT     seconds `start` waits for the server to answer (default 60)
#   CEKAT_CH_MALLOC_CONF       jemalloc options of the server (default below; empty: jemalloc's own)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"

CH_DIR="${CEKAT_CH_DIR:-$REPO_DIR/.run/clickhouse}"
case "$CH_DIR" in
/*) ;;
*) CH_DIR="$PWD/$CH_DIR" ;;
esac
# The directory is written into XML and sed replacements: keep it to plain characters.
[[ "$CH_DIR" != *[\|\&\<\>\"\']* ]] || {
	echo "clickhouse.sh: CEKAT_CH_DIR must not contain | & < > or quotes: $CH_DIR" >&2
	exit 1
}
NATIVE_PORT="${CEKAT_CH_NATIVE_PORT:-19000}"
HTTP_PORT="${CEKAT_CH_HTTP_PORT:-18123}"
INTERSERVER_PORT="${CEKAT_CH_INTERSERVER_PORT:-19009}"
START_TIMEOUT="${CEKAT_CH_START_TIMEOUT:-60}"
# Debian's clickhouse-server 18.16 uses the system's jemalloc with its defaults, under which a
# freed buffer of 8 MiB or more (a column of an INSERT's block) goes back to the kernel at once
# and is faulted in again on its next use: on this project's VMs that made ClickHouse's CPU per
# inserted message 2.5-5 times what it is with the options ClickHouse sets for the jemalloc it
# bundles (contrib/jemalloc-cmake), here without percpu_arena, which measured worse on 2 cores.
MALLOC_CONF_CH="${CEKAT_CH_MALLOC_CONF-oversize_threshold:0,muzzy_decay_ms:5000,dirty_decay_ms:5000}"
HOST=127.0.0.1

CONF_DIR="$CH_DIR/conf"
DATA_DIR="$CH_DIR/data"
LOG_DIR="$CH_DIR/log"
TMP_DIR="$CH_DIR/tmp"
USER_FILES_DIR="$CH_DIR/user_files"
PID_FILE="$CH_DIR/clickhouse-server.pid"
CONFIG_FILE="$CONF_DIR/config.xml"

SCRIPT_NAME=clickhouse.sh
# shellcheck source=../lib.sh
source "$SCRIPT_DIR/../lib.sh"

for p in "$NATIVE_PORT" "$HTTP_PORT" "$INTERSERVER_PORT" "$START_TIMEOUT"; do
	[[ "$p" =~ ^[0-9]+$ ]] || die "not a number: $p"
done

cmd_install() {
	if find_bin clickhouse-server >/dev/null && find_bin clickhouse-client >/dev/null; then
		return 0
	fi
	log "installing clickhouse-server and clickhouse-client with apt-get"
	local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
		clickhouse-server clickhouse-client)
	# apt's chatter goes to stderr: stdout stays for this script's own answers.
	if ! as_root "${apt[@]}" >&2; then
		log "install failed; running apt-get update and trying again"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		as_root "${apt[@]}" >&2
	fi
	find_bin clickhouse-server >/dev/null || die "clickhouse-server still missing after install"
	find_bin clickhouse-client >/dev/null || die "clickhouse-client still missing after install"
}

# Prints the pid of the private instance and returns 0 if it is running.
running_pid() {
	[[ -f "$PID_FILE" ]] || return 1
	local pid
	pid="$(tr -cd '0-9' <"$PID_FILE")"
	[[ -n "$pid" ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid: the process must be a server using our config.
	if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONFIG_FILE"; then
		return 1
	fi
	echo "$pid"
}

# The native port the running instance was configured with (it may differ from the environment
# of this call).
configured_port() {
	if [[ -f "$CONFIG_FILE" ]]; then
		sed -n 's:.*<tcp_port>\([0-9]*\)</tcp_port>.*:\1:p' "$CONFIG_FILE" | head -n1
	else
		echo "$NATIVE_PORT"
	fi
}

answers() {
	local port="$1" client
	client="$(find_bin clickhouse-client)" || return 1
	"$client" --host "$HOST" --port "$port" --connect_timeout 2 --query 'SELECT 1' >/dev/null 2>&1
}

log_tail() {
	local n="${1:-50}" f
	for f in "$LOG_DIR/clickhouse-server.err.log" "$LOG_DIR/clickhouse-server.log" "$LOG_DIR/stdout.log"; do
		[[ -s "$f" ]] || continue
		echo "----- last $n lines of $f" >&2
		grep -v 'Include not found' "$f" | tail -n "$n" >&2 || true
	done
}

write_config() {
	mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOG_DIR" "$TMP_DIR" "$USER_FILES_DIR"
	local f subst
	subst="s|@@CONF_DIR@@|$CONF_DIR|g;s|@@DATA_DIR@@|$DATA_DIR|g;s|@@LOG_DIR@@|$LOG_DIR|g"
	subst+=";s|@@TMP_DIR@@|$TMP_DIR|g;s|@@USER_FILES_DIR@@|$USER_FILES_DIR|g"
	subst+=";s|@@NATIVE_PORT@@|$NATIVE_PORT|g;s|@@HTTP_PORT@@|$HTTP_PORT|g"
	subst+=";s|@@INTERSERVER_PORT@@|$INTERSERVER_PORT|g"
	for f in config users; do
		sed "$subst" "$SCRIPT_DIR/$f.xml.tmpl" >"$CONF_DIR/$f.xml.new"
		mv "$CONF_DIR/$f.xml.new" "$CONF_DIR/$f.xml"
	done
}

cmd_start() {
	local pid
	if pid="$(running_pid)"; then
		echo "clickhouse: already running (pid $pid) on $HOST:$(configured_port), state in $CH_DIR"
		return 0
	fi
	cmd_install
	local server
	server="$(find_bin clickhouse-server)"
	if answers "$NATIVE_PORT"; then
		die "another ClickHouse server already answers on $HOST:$NATIVE_PORT; stop it or set CEKAT_CH_NATIVE_PORT"
	fi
	rm -f "$PID_FILE"
	write_config
	log "starting clickhouse-server on $HOST:$NATIVE_PORT (HTTP $HTTP_PORT), state in $CH_DIR"
	# setsid: the server must outlive this script and not share its process group, so that a
	# caller killing its job does not take the server with it. The server writes its own pid
	# file; $! only serves to notice an early exit.
	(
		cd "$CH_DIR"
		exec setsid env MALLOC_CONF="$MALLOC_CONF_CH" "$server" --config-file="$CONFIG_FILE" --pid-file="$PID_FILE"
	) </dev/null >>"$LOG_DIR/stdout.log" 2>&1 &
	local launcher=$! waited=0
	while ((waited < START_TIMEOUT * 2)); do
		if answers "$NATIVE_PORT"; then
			if ! pid="$(running_pid)"; then
				# Some builds write the pid file late; fall back to the launcher's pid.
				echo "$launcher" >"$PID_FILE"
				pid="$launcher"
			fi
			echo "clickhouse: running (pid $pid) on $HOST:$NATIVE_PORT, state in $CH_DIR"
			return 0
		fi
		if ! kill -0 "$launcher" 2>/dev/null && ! running_pid >/dev/null; then
			log "clickhouse-server exited during start-up"
			log_tail 40
			exit 1
		fi
		sleep 0.5
		waited=$((waited + 1))
	done
	log "clickhouse-server did not answer on $HOST:$NATIVE_PORT within ${START_TIMEOUT}s"
	log_tail 40
	exit 1
}

cmd_stop() {
	local pid
	if ! pid="$(running_pid)"; then
		rm -f "$PID_FILE"
		echo "clickhouse: not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 60; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PID_FILE"
			echo "clickhouse: stopped (pid $pid)"
			return 0
		fi
		sleep 0.5
	done
	log "clickhouse-server (pid $pid) did not exit within 30s of SIGTERM; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 20; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	rm -f "$PID_FILE"
	echo "clickhouse: stopped (pid $pid, killed)"
}

cmd_status() {
	local pid port
	if pid="$(running_pid)"; then
		port="$(configured_port)"
		if answers "$port"; then
			echo "clickhouse: running (pid $pid) on $HOST:$port, state in $CH_DIR"
		else
			echo "clickhouse: process $pid is up but does not answer on $HOST:$port"
		fi
		return 0
	fi
	echo "clickhouse: not running (state in $CH_DIR)"
	return 3
}

cmd_client() {
	local client port
	client="$(find_bin clickhouse-client)" || die "clickhouse-client is not installed; run: $0 install"
	port="$NATIVE_PORT"
	if running_pid >/dev/null; then
		port="$(configured_port)"
	fi
	exec "$client" --host "$HOST" --port "$port" "$@"
}

cmd_env() {
	local port="$NATIVE_PORT"
	if running_pid >/dev/null; then
		port="$(configured_port)"
	fi
	echo "export CEKAT_ARCHIVER_CLICKHOUSE_ADDR=$HOST:$port"
	echo "export CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=$HOST:$port"
}

main() {
	local cmd="${1:-}"
	[[ $# -gt 0 ]] && shift
	case "$cmd" in
	install) cmd_install ;;
	start) cmd_start ;;
	stop) cmd_stop ;;
	restart)
		cmd_stop
		cmd_start
		;;
	status) cmd_status ;;
	client) cmd_client "$@" ;;
	env) cmd_env ;;
	logs) log_tail "${1:-50}" 2>&1 ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
