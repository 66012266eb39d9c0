#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for pushmail's tests.
#
#   scripts/pgcluster.sh start DIR   make a cluster in DIR, start it, print
#                                    its URL on stdout
#   scripts/pgcluster.sh stop DIR    stop it (DIR itself is left for the
#                                    caller to remove)
#
# It uses the server binaries of Debian's postgresql package
# (/usr/lib/postgresql/VERSION/bin, the newest version when there are
# several). The cluster listens on 127.0.0.1 only, on a free port, with its
# unix socket inside DIR, and trusts every local and 127.0.0.1 connection:
# it is for tests, never for mail. fsync and synchronous_commit stay on, so
# the tests see the durability a real server has. The database "pushmail"
# is created, pg_trgm is checked to be installable (it comes with Debian's
# postgresql-NN package), and the URL printed is
#   postgres://postgres@127.0.0.1:PORT/pushmail?sslmode=disable
# As root, DIR is given to the postgres system user and the server runs as
# that user (PostgreSQL refuses to run as root); DIR's parent must then be
# searchable by it, as mktemp -d's /tmp is. Progress goes to stderr, the
# server's log to DIR/postgres.log.
set -euo pipefail

usage() {
	echo "usage: $0 start|stop DIR" >&2
	exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$initdb" ]; then
	echo "pgcluster: no /usr/lib/postgresql/*/bin/initdb: install Debian's postgresql package" >&2
	exit 1
fi
bin=$(dirname "$initdb")

# as_pg runs a server binary as the postgres user when we are root, from
# / so that an unreadable working directory (root's home) does not matter.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# free_port prints a TCP port nothing on 127.0.0.1 listens on now. Another
# process may take it before the server binds it, so start retries.
free_port() {
	local port
	for _ in $(seq 1 50); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	echo "pgcluster: found no free port" >&2
	return 1
}

start() {
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -e "$dir/data" ]; then
		echo "pgcluster: $dir/data exists: stop and remove the old cluster first" >&2
		exit 1
	fi
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$dir"
	fi
	chmod 0700 "$dir"
	as_pg "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C \
		--auth-local=trust --auth-host=trust >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		exit 1
	}
	# Trust local and 127.0.0.1 only: initdb's file also trusts ::1 and
	# replication connections, which these tests never make.
	as_pg tee "$dir/data/pg_hba.conf" >/dev/null <<-HBA
		# TYPE  DATABASE  USER  ADDRESS       METHOD
		local   all       all                 trust
		host    all       all   127.0.0.1/32  trust
	HBA
	# fsync and synchronous_commit are on by default; they are named here
	# so that no one turns them off to make tests faster: the store's
	# tests check what a commit promises.
	as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<-CONF

		# scripts/pgcluster.sh
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$dir'
		fsync = on
		synchronous_commit = on
		full_page_writes = on
		max_connections = 300
		shared_buffers = 128MB
		logging_collector = off
	CONF
	local port ok=
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
			-o "-p $port" start >/dev/null; then
			ok=1
			break
		fi
		echo "pgcluster: start on port $port failed, trying another" >&2
	done
	if [ -z "$ok" ]; then
		tail -n 20 "$dir/postgres.log" >&2 || true
		exit 1
	fi
	echo "$port" >"$dir/port"
	psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres)
	as_pg "${psql[@]}" -d postgres -c 'CREATE DATABASE pushmail' >&2
	# pg_trgm is what the PostgreSQL store's text search indexes need.
	if ! as_pg "${psql[@]}" -d pushmail -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm' >&2; then
		echo "pgcluster: pg_trgm cannot be created (is postgresql-contrib installed?)" >&2
		exit 1
	fi
	echo "postgres://postgres@127.0.0.1:$port/pushmail?sslmode=disable"
}

stop() {
	if [ ! -f "$dir/data/postmaster.pid" ]; then
		return 0 # never started, or stopped already
	fi
	as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
