#!/usr/bin/env bash
# Debian's Prometheus server and promtool, for the end-to-end metrics test.
#
# Usage: deploy/prometheus/prometheus.sh COMMAND
#
#   install   install Debian's `prometheus` package (which provides prometheus and promtool) if
#             either binary is missing
#   path      print the path of prometheus, then of promtool, one a line; exit 1 if one is missing
#
# The test (cmd/cekat-archiver, TestPrometheusScrapesDaemon) runs its own Prometheus with its own
# config, data directory and port, so a system-wide Prometheus (the package's service on :9090)
# neither helps nor matters. The package's service is not started by the install: while apt-get
# runs, a temporary /usr/sbin/policy-rc.d denies service starts, unless the machine already has a
# policy-rc.d (containers usually do), which is then left alone. This keeps the install from
# failing on machines without a working init system and from leaving a server running.
# Recommended packages (prometheus-node-exporter, another service) are not installed.
set -euo pipefail

POLICY_RC=/usr/sbin/policy-rc.d

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT_NAME=prometheus.sh
# shellcheck source=../lib.sh
source "$SCRIPT_DIR/../lib.sh"

# The temporary policy-rc.d this script wrote, removed on exit; empty when it wrote none.
temp_policy=""

remove_temp_policy() {
	if [[ -n "$temp_policy" ]]; then
		# Remove only the file this script wrote: it carries a marker line.
		as_root sh -c "grep -q 'written by cekat-archiver prometheus.sh' '$POLICY_RC' 2>/dev/null && rm -f '$POLICY_RC'" || true
		temp_policy=""
	fi
}

deny_service_starts() {
	if [[ -e "$POLICY_RC" ]]; then
		return 0
	fi
	log "denying service starts while apt-get runs (temporary $POLICY_RC)"
	trap remove_temp_policy EXIT
	trap 'remove_temp_policy; exit 130' INT
	trap 'remove_temp_policy; exit 143' TERM
	as_root sh -c "printf '%s\n' '#!/bin/sh' '# written by cekat-archiver prometheus.sh; removed when its install ends' 'exit 101' >'$POLICY_RC' && chmod 755 '$POLICY_RC'"
	temp_policy=1
}

cmd_install() {
	if find_bin prometheus >/dev/null && find_bin promtool >/dev/null; then
		return 0
	fi
	log "installing Debian's prometheus package with apt-get"
	local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
		prometheus)
	deny_service_starts
	# apt's chatter goes to stderr: stdout stays for this script's own answers.
	if ! as_root "${apt[@]}" >&2; then
		log "install failed; running apt-get update and trying again"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		as_root "${apt[@]}" >&2
	fi
	remove_temp_policy
	find_bin prometheus >/dev/null || die "prometheus still missing after install"
	find_bin promtool >/dev/null || die "promtool still missing after install"
}

cmd_path() {
	local p t
	p="$(find_bin prometheus)" || die "prometheus is not installed; run: $0 install"
	t="$(find_bin promtool)" || die "promtool is not installed; run: $0 install"
	echo "$p"
	echo "$t"
}

main() {
	local cmd="${1:-}"
	case "$cmd" in
	install) cmd_install ;;
	path) cmd_path ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
