# Shared by the scripts under deploy/ that install and run Debian's programs. A script sets
# SCRIPT_NAME (for its messages), then sources this file.

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# find_bin NAME prints the path of a program; servers live in /usr/sbin, often not on a non-root
# user's PATH.
find_bin() {
	local name="$1" dir
	if command -v "$name" >/dev/null 2>&1; then
		command -v "$name"
		return 0
	fi
	for dir in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
		if [[ -x "$dir/$name" ]]; then
			echo "$dir/$name"
			return 0
		fi
	done
	return 1
}

# as_root runs its arguments as root: directly when root, else through sudo.
as_root() {
	if [[ "$(id -u)" -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $* (and sudo is not installed)"
	fi
}

# usage prints the calling script's header comment.
usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}
