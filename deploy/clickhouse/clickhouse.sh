#!/usr/bin/env bash
# A private ClickHouse server for development and tests, on either of two engines:
#
#   debian  Debian's clickhouse-server package (ClickHouse 18.16), the floor the archiver supports
#   chdb    ClickHouse 26.7's engine from chDB's libchdb.so (npm package @chdb/lib-linux-x64-gnu,
#           pinned below), serving the native and HTTP protocols through clickhouse-local's
#           listeners; chdb-serve.c beside this script is its launcher, built here with gcc
#
# Each engine has its own state directory and ports, so both can run side by side. The test
# cluster (cluster.sh) stays on Debian's servers and ZooKeeper.
#
# Usage: deploy/clickhouse/clickhouse.sh COMMAND [ARGS...]
#
#   install   install the engine if missing: Debian's clickhouse-server and clickhouse-client, or
#             chDB's library (npm pack into CEKAT_CHDB_HOME) and its launcher (plus Debian's
#             clickhouse-client, the client of both engines)
#   start     install if needed, then start the private instance in the background and wait
#             until it answers (idempotent: an instance already running is left alone)
#   stop      stop the private instance and wait for it to exit (idempotent)
#   restart   stop, then start
#   status    say whether the private instance runs; exit 0 if it does, 3 if not
#   client    run clickhouse-client against the private instance with the remaining arguments
#   env       print `export ...` lines for the instance's address, for `eval "$(... env)"` (and,
#             for chdb, CEKAT_BENCH_CHDB_LOCAL: the launcher and library that run clickhouse-local)
#   logs      print the tail of the server log (N lines, default 50)
#
# The instance has its own config (written from config.xml.tmpl and users.xml.tmpl beside this
# script), data, log, tmp and user_files directories, all under one state directory, and its own
# ports, so it never collides with a system-wide ClickHouse nor reads /etc/clickhouse-server.
# Its only user is `default`, without a password, reachable from localhost only.
#
# Environment:
#   CEKAT_CH_ENGINE            debian (default) or chdb
#   CEKAT_CH_DIR               state directory (default: <repo>/.run/clickhouse, chdb: <repo>/.run/clickhouse-chdb)
#   CEKAT_CH_NATIVE_PORT       native protocol port (default 19000, chdb: 19200)
#   CEKAT_CH_HTTP_PORT         HTTP port (default 18123, chdb: 18223)
#   CEKAT_CH_INTERSERVER_PORT  interserver HTTP port (default 19009; debian only)
#   CEKAT_CHDB_VERSION         version of @chdb/lib-linux-x64-gnu (default 26.7.3-stable.1)
#   CEKAT_CHDB_HOME            where the library and the launcher are installed (default: <repo>/.run/chdb)
#   CEKAT_CH_START_TIMEOUT     seconds `start` waits for the server to answer (default 60)
#   CEKAT_CH_MALLOC_CONF       jemalloc options of Debian's server (default below; empty: jemalloc's own)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"

ENGINE="${CEKAT_CH_ENGINE:-debian}"
case "$ENGINE" in
debian)
	CH_DIR="${CEKAT_CH_DIR:-$REPO_DIR/.run/clickhouse}"
	NATIVE_PORT="${CEKAT_CH_NATIVE_PORT:-19000}"
	HTTP_PORT="${CEKAT_CH_HTTP_PORT:-18123}"
	;;
chdb)
	CH_DIR="${CEKAT_CH_DIR:-$REPO_DIR/.run/clickhouse-chdb}"
	NATIVE_PORT="${CEKAT_CH_NATIVE_PORT:-19200}"
	HTTP_PORT="${CEKAT_CH_HTTP_PORT:-18223}"
	;;
*)
	echo "clickhouse.sh: CEKAT_CH_ENGINE must be debian or chdb, not: $ENGINE" >&2
	exit 2
	;;
esac
case "$CH_DIR" in
/*) ;;
*) CH_DIR="$PWD/$CH_DIR" ;;
esac
# The directory is written into XML and sed replacements: keep it to plain characters.
[[ "$CH_DIR" != *[\|\&\<\>\"\']* ]] || {
	echo "clickhouse.sh: CEKAT_CH_DIR must not contain | & < > or quotes: $CH_DIR" >&2
	exit 1
}
INTERSERVER_PORT="${CEKAT_CH_INTERSERVER_PORT:-19009}"
START_TIMEOUT="${CEKAT_CH_START_TIMEOUT:-60}"
# Debian's clickhouse-server 18.16 uses the system's jemalloc with its defaults, under which a
# freed buffer of 8 MiB or more (a column of an INSERT's block) goes back to the kernel at once
# and is faulted in again on its next use: on this project's VMs that made ClickHouse's CPU per
# inserted message 2.5-5 times what it is with the options ClickHouse sets for the jemalloc it
# bundles (contrib/jemalloc-cmake), here without percpu_arena, which measured worse on 2 cores.
MALLOC_CONF_CH="${CEKAT_CH_MALLOC_CONF-oversize_threshold:0,muzzy_decay_ms:5000,dirty_decay_ms:5000}"
HOST=127.0.0.1

CHDB_VERSION="${CEKAT_CHDB_VERSION:-26.7.3-stable.1}"
CHDB_HOME="${CEKAT_CHDB_HOME:-$REPO_DIR/.run/chdb}"
case "$CHDB_HOME" in
/*) ;;
*) CHDB_HOME="$PWD/$CHDB_HOME" ;;
esac
CHDB_LIB="$CHDB_HOME/$CHDB_VERSION/libchdb.so"
CHDB_SERVE="$CHDB_HOME/chdb-serve"

CONF_DIR="$CH_DIR/conf"
DATA_DIR="$CH_DIR/data"
LOG_DIR="$CH_DIR/log"
TMP_DIR="$CH_DIR/tmp"
USER_FILES_DIR="$CH_DIR/user_files"
PID_FILE="$CH_DIR/clickhouse-server.pid"
CONFIG_FILE="$CONF_DIR/config.xml"
# chdb: the ports the running instance was started with.
PORTS_FILE="$CH_DIR/ports"

SCRIPT_NAME=clickhouse.sh
# shellcheck source=../lib.sh
source "$SCRIPT_DIR/../lib.sh"

for p in "$NATIVE_PORT" "$HTTP_PORT" "$INTERSERVER_PORT" "$START_TIMEOUT"; do
	[[ "$p" =~ ^[0-9]+$ ]] || die "not a number: $p"
done

cmd_install() {
	case "$ENGINE" in
	debian) apt_install clickhouse-server clickhouse-client ;;
	chdb)
		find_bin clickhouse-client >/dev/null || apt_install clickhouse-client
		install_chdb
		;;
	esac
}

# apt_install installs Debian's packages named, when any of the programs they are named after
# is missing.
apt_install() {
	local p missing=0
	for p in "$@"; do
		find_bin "$p" >/dev/null || missing=1
	done
	[[ $missing -eq 1 ]] || return 0
	log "installing $* with apt-get"
	local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@")
	# apt's chatter goes to stderr: stdout stays for this script's own answers.
	if ! as_root "${apt[@]}" >&2; then
		log "install failed; running apt-get update and trying again"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		as_root "${apt[@]}" >&2
	fi
	for p in "$@"; do
		find_bin "$p" >/dev/null || die "$p still missing after install"
	done
}

# install_chdb fetches the pinned library with npm (the registry checks its integrity) and
# builds the launcher when its source is newer than the build.
install_chdb() {
	if [[ ! -s "$CHDB_LIB" ]]; then
		command -v npm >/dev/null 2>&1 || die "npm is needed to fetch @chdb/lib-linux-x64-gnu"
		mkdir -p "$CHDB_HOME"
		local tmp
		tmp="$(mktemp -d "$CHDB_HOME/.install.XXXXXX")"
		log "fetching @chdb/lib-linux-x64-gnu@$CHDB_VERSION (~180 MB) with npm pack"
		if ! (cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$CHDB_VERSION" >&2 &&
			tar -xzf ./*.tgz package/libchdb.so); then
			rm -rf "$tmp"
			die "npm pack of @chdb/lib-linux-x64-gnu@$CHDB_VERSION failed"
		fi
		rm -rf "${CHDB_LIB%/*}"
		mv "$tmp/package" "${CHDB_LIB%/*}"
		rm -rf "$tmp"
	fi
	if [[ ! -x "$CHDB_SERVE" || "$SCRIPT_DIR/chdb-serve.c" -nt "$CHDB_SERVE" ]]; then
		command -v gcc >/dev/null 2>&1 || apt_install gcc
		mkdir -p "$CHDB_HOME"
		gcc -O2 -Wall -o "$CHDB_SERVE.new" "$SCRIPT_DIR/chdb-serve.c" -ldl -lpthread ||
			die "building the launcher chdb-serve failed"
		mv "$CHDB_SERVE.new" "$CHDB_SERVE"
	fi
}

# Warns when the chdb instance runs an older launcher than chdb-serve.c (its binary was rebuilt,
# or is due to be, since it started): that one may lack what the tests rely on (the relay that
# keeps a client's reset from aborting the engine). A restart runs the current one.
stale_launcher_warning() {
	[[ "$ENGINE" == chdb ]] || return 0
	local exe
	exe="$(readlink "/proc/$1/exe" 2>/dev/null)" || return 0
	if [[ "$exe" == *" (deleted)" || "$SCRIPT_DIR/chdb-serve.c" -nt "$exe" ]]; then
		log "warning: pid $1 runs a launcher older than $SCRIPT_DIR/chdb-serve.c; restart it (clickhouse.sh restart) to run the current one"
	fi
}

# Prints the pid of the private instance and returns 0 if it is running.
running_pid() {
	[[ -f "$PID_FILE" ]] || return 1
	local pid
	pid="$(tr -cd '0-9' <"$PID_FILE")"
	[[ -n "$pid" ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid: the process must be a server using our config or data.
	local own="$CONFIG_FILE"
	[[ "$ENGINE" == debian ]] || own="$DATA_DIR"
	if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$own"; then
		return 1
	fi
	echo "$pid"
}

# The native port the running instance was configured with (it may differ from the environment
# of this call).
configured_port() {
	if [[ "$ENGINE" == chdb ]]; then
		if [[ -f "$PORTS_FILE" ]]; then
			cut -d' ' -f1 "$PORTS_FILE"
		else
			echo "$NATIVE_PORT"
		fi
	elif [[ -f "$CONFIG_FILE" ]]; then
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
	for f in "$LOG_DIR/clickhouse-server.err.log" "$LOG_DIR/clickhouse-server.log" "$LOG_DIR/stdout.log" "$LOG_DIR/chdb-serve.log"; do
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
		echo "clickhouse ($ENGINE): already running (pid $pid) on $HOST:$(configured_port), state in $CH_DIR"
		stale_launcher_warning "$pid"
		return 0
	fi
	cmd_install
	local server=""
	[[ "$ENGINE" == chdb ]] || server="$(find_bin clickhouse-server)"
	if answers "$NATIVE_PORT"; then
		die "another ClickHouse server already answers on $HOST:$NATIVE_PORT; stop it or set CEKAT_CH_NATIVE_PORT"
	fi
	rm -f "$PID_FILE"
	# setsid: the server must outlive this script and not share its process group, so that a
	# caller killing its job does not take the server with it.
	local launcher
	if [[ "$ENGINE" == debian ]]; then
		write_config
		log "starting clickhouse-server on $HOST:$NATIVE_PORT (HTTP $HTTP_PORT), state in $CH_DIR"
		# The server writes its own pid file; $! only serves to notice an early exit.
		(
			cd "$CH_DIR"
			exec setsid env MALLOC_CONF="$MALLOC_CONF_CH" "$server" --config-file="$CONFIG_FILE" --pid-file="$PID_FILE"
		) </dev/null >>"$LOG_DIR/stdout.log" 2>&1 &
		launcher=$!
	else
		# clickhouse-local keeps its tmp and user_files directories under its data path.
		mkdir -p "$DATA_DIR" "$LOG_DIR" "$CONF_DIR"
		cp "$SCRIPT_DIR/chdb.xml.tmpl" "$CONF_DIR/chdb.xml.new"
		mv "$CONF_DIR/chdb.xml.new" "$CONF_DIR/chdb.xml"
		log "starting ClickHouse $CHDB_VERSION (chDB's clickhouse-local) on $HOST:$NATIVE_PORT (HTTP $HTTP_PORT), state in $CH_DIR"
		# clickhouse-local runs inside the launcher: its pid is the server's. Warnings and
		# errors go to the log (the console logger is clickhouse-local's only one).
		(
			cd "$CH_DIR"
			exec setsid "$CHDB_SERVE" "$CHDB_LIB" "$DATA_DIR" "$NATIVE_PORT" "$HTTP_PORT" \
				--config-file="$CONF_DIR/chdb.xml" --log-level=warning --logger.console=1
		) </dev/null >>"$LOG_DIR/chdb-serve.log" 2>&1 &
		launcher=$!
		echo "$launcher" >"$PID_FILE"
		echo "$NATIVE_PORT $HTTP_PORT" >"$PORTS_FILE"
	fi
	local waited=0
	while ((waited < START_TIMEOUT * 2)); do
		if answers "$NATIVE_PORT"; then
			if ! pid="$(running_pid)"; then
				# Some builds write the pid file late; fall back to the launcher's pid.
				echo "$launcher" >"$PID_FILE"
				pid="$launcher"
			fi
			echo "clickhouse ($ENGINE): running (pid $pid) on $HOST:$NATIVE_PORT, state in $CH_DIR"
			return 0
		fi
		if ! kill -0 "$launcher" 2>/dev/null && ! running_pid >/dev/null; then
			log "the server exited during start-up"
			log_tail 40
			exit 1
		fi
		sleep 0.5
		waited=$((waited + 1))
	done
	log "the server did not answer on $HOST:$NATIVE_PORT within ${START_TIMEOUT}s"
	log_tail 40
	exit 1
}

cmd_stop() {
	local pid
	if ! pid="$(running_pid)"; then
		rm -f "$PID_FILE"
		echo "clickhouse ($ENGINE): not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 60; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PID_FILE"
			echo "clickhouse ($ENGINE): stopped (pid $pid)"
			return 0
		fi
		sleep 0.5
	done
	log "the server (pid $pid) did not exit within 30s of SIGTERM; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 20; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	rm -f "$PID_FILE"
	echo "clickhouse ($ENGINE): stopped (pid $pid, killed)"
}

cmd_status() {
	local pid port
	if pid="$(running_pid)"; then
		port="$(configured_port)"
		if answers "$port"; then
			echo "clickhouse ($ENGINE): running (pid $pid) on $HOST:$port, state in $CH_DIR"
		else
			echo "clickhouse ($ENGINE): process $pid is up but does not answer on $HOST:$port"
		fi
		return 0
	fi
	echo "clickhouse ($ENGINE): not running (state in $CH_DIR)"
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
	# The sink's benchmark loads through clickhouse-local of the same release (see chdb-serve.c).
	[[ "$ENGINE" != chdb ]] || echo "export CEKAT_BENCH_CHDB_LOCAL='$CHDB_SERVE $CHDB_LIB'"
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
