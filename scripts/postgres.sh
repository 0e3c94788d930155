#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests.
#
#   scripts/postgres.sh start DIR   start a cluster under DIR (created if
#                                   missing) and print its postgres:// URL;
#                                   if one already runs there, print its URL
#   scripts/postgres.sh stop DIR    stop that cluster and remove DIR
#
# PostgreSQL is installed from Debian's packages when initdb/pg_ctl are
# missing. The cluster trusts local connections, listens on 127.0.0.1 only
# (on a free port) and on a unix socket inside DIR, and runs with fsync off:
# it holds nothing worth keeping. Set MESHGUARD_PG_DURABLE=1 to keep fsync on
# (for benchmarks whose figures should mean something).
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

# pgbin prints the directory holding initdb and pg_ctl, installing them if
# needed. Debian keeps them off PATH, in /usr/lib/postgresql/<ver>/bin.
pgbin() {
	local c
	if c=$(command -v initdb) && command -v pg_ctl >/dev/null; then
		dirname "$(readlink -f "$c")"
		return
	fi
	c=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
	if [ -z "$c" ]; then
		[ "$(id -u)" = 0 ] || die "PostgreSQL is not installed, and installing it needs root"
		echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq postgresql >&2
		c=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
	fi
	[ -x "$c/initdb" ] || die "no initdb found after installing PostgreSQL"
	echo "$c"
}

# as_owner runs a command as the cluster's owner: initdb and postgres refuse
# to run as root, so root hands the cluster to the postgres OS user.
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

url() { echo "postgres://postgres@127.0.0.1:$(cat "$1/port")/meshguard?sslmode=disable"; }

start() {
	local dir=$1 bin port i
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	bin=$(pgbin)
	if [ -f "$dir/port" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		url "$dir"
		return
	fi
	touch "$dir/.meshguard-postgres"
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || die "no postgres OS user to run the cluster as"
		chown postgres: "$dir"
		chmod 0700 "$dir"
	fi
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
	fi
	local fsync=off
	[ "${MESHGUARD_PG_DURABLE:-}" = 1 ] && fsync=on
	for i in $(seq 1 20); do
		port=$((20000 + RANDOM % 40000))
		# Something answers there already: try another.
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
		if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=500 -c fsync=$fsync -c synchronous_commit=$fsync -c full_page_writes=$fsync" >/dev/null; then
			echo "$port" >"$dir/port"
			as_owner "$bin/psql" -q -h "$dir" -p "$port" -U postgres -d postgres -c 'CREATE DATABASE meshguard' >/dev/null
			url "$dir"
			return
		fi
	done
	cat "$dir/server.log" >&2 || true
	die "could not start PostgreSQL on a free port"
}

stop() {
	local dir=$1 bin
	[ -d "$dir" ] || return 0
	# Remove only what start made.
	[ -f "$dir/.meshguard-postgres" ] || die "$dir was not made by postgres.sh start; not removing it"
	if [ -f "$dir/data/PG_VERSION" ]; then
		bin=$(pgbin)
		as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}

case "${1:-}" in
start) [ $# = 2 ] || die "usage: $0 start DIR"; start "$2" ;;
stop) [ $# = 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
*) die "usage: $0 start DIR | stop DIR" ;;
esac
