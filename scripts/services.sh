#!/usr/bin/env bash
# Make sure the services the test suite needs are up:
#   PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth)
#   Redis      on 127.0.0.1:6379
# Starts them if they are installed but down, installs them from Debian's
# packages if missing. Exits non-zero with a clear message if a service
# cannot be made available.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
WAIT_SECONDS=30

log() { echo "services: $*"; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- apt helper
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; cannot install: $*"
    [ "$(id -u)" = 0 ] || die "must run as root to install: $*"
    local out
    out=$(mktemp)
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        if ! apt-get update -qq >"$out" 2>&1; then
            cat "$out" >&2; rm -f "$out"
            die "apt-get update failed"
        fi
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$out" 2>&1; then
        cat "$out" >&2; rm -f "$out"
        die "apt-get install $* failed"
    fi
    rm -f "$out"
}

# ---------------------------------------------------------------- client tools
missing_pkgs=()
if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    missing_pkgs+=(postgresql-client)
fi
if ! command -v redis-cli >/dev/null 2>&1; then
    missing_pkgs+=(redis-tools)
fi
if [ "${#missing_pkgs[@]}" -gt 0 ]; then
    apt_install "${missing_pkgs[@]}"
    log "installed client tools: ${missing_pkgs[*]}"
fi

# ---------------------------------------------------------------- PostgreSQL
pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

pg_version() {
    # Version of the (first) existing cluster, else the newest installed server.
    if [ -d /etc/postgresql ] && [ -n "$(ls -A /etc/postgresql 2>/dev/null)" ]; then
        find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | head -1
    else
        find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -1
    fi
}

pg_ensure_cluster() {
    local ver=$1
    if [ ! -d "/etc/postgresql/$ver/main" ]; then
        log "creating PostgreSQL $ver cluster 'main' on port $PG_PORT"
        pg_createcluster --port "$PG_PORT" "$ver" main >/dev/null \
            || die "pg_createcluster $ver main failed"
    fi
}

pg_configure_trust() {
    # Trust auth for local socket and loopback TCP, listen on localhost only.
    local ver=$1 dir hba tmp
    dir="/etc/postgresql/$ver/main"
    hba="$dir/pg_hba.conf"
    [ -f "$hba" ] || die "$hba not found"
    if ! grep -q '^# algobridge: trust' "$hba"; then
        tmp=$(mktemp)
        {
            echo "# algobridge: trust auth for local test/dev connections (scripts/services.sh)"
            echo "local   all   all                  trust"
            echo "host    all   all   127.0.0.1/32   trust"
            echo "host    all   all   ::1/128        trust"
            echo
            cat "$hba"
        } >"$tmp"
        cat "$tmp" >"$hba"   # keep the file's owner and mode
        rm -f "$tmp"
    fi
    mkdir -p "$dir/conf.d"
    printf "listen_addresses = 'localhost'\nport = %s\n" "$PG_PORT" >"$dir/conf.d/algobridge.conf"
    chown -R postgres:postgres "$dir/conf.d" 2>/dev/null || true
    if ! grep -Eq "^[[:space:]]*include_dir[[:space:]]*=[[:space:]]*'conf\.d'" "$dir/postgresql.conf"; then
        echo "include_dir = 'conf.d'" >>"$dir/postgresql.conf"
    fi
}

pg_wait() {
    local i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        pg_ready && return 0
        sleep 1
    done
    return 1
}

pg_start() {
    local ver=$1 action=start
    if pg_ctlcluster --skip-systemctl-redirect "$ver" main status >/dev/null 2>&1; then
        action=restart   # running (e.g. started by the package), reload new config
    fi
    pg_ctlcluster --skip-systemctl-redirect "$ver" main "$action" \
        || log "pg_ctlcluster $ver main $action returned non-zero; waiting for readiness anyway"
    pg_wait || die "PostgreSQL $ver did not become ready on $PG_HOST:$PG_PORT within ${WAIT_SECONDS}s (see /var/log/postgresql/)"
}

if pg_ready; then
    log "PostgreSQL already up on $PG_HOST:$PG_PORT"
elif [ -d /usr/lib/postgresql ] && [ -n "$(ls -A /usr/lib/postgresql 2>/dev/null)" ]; then
    ver=$(pg_version)
    pg_ensure_cluster "$ver"
    log "starting PostgreSQL $ver"
    pg_start "$ver"
    log "PostgreSQL $ver started on $PG_HOST:$PG_PORT"
else
    apt_install postgresql
    [ -d /usr/lib/postgresql ] || die "postgresql installed but /usr/lib/postgresql is missing"
    ver=$(pg_version)
    pg_ensure_cluster "$ver"
    pg_configure_trust "$ver"
    log "starting PostgreSQL $ver"
    pg_start "$ver"
    log "PostgreSQL $ver installed and started on $PG_HOST:$PG_PORT"
fi

# The tests connect as postgres@127.0.0.1 without a password.
if ! PGCONNECT_TIMEOUT=5 psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null; then
    die "PostgreSQL is up but 'psql -h $PG_HOST -U postgres postgres' fails: the tests need trust auth for postgres on $PG_HOST (pg_hba.conf)"
fi

# ---------------------------------------------------------------- Redis
redis_ready() {
    [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

redis_start() {
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log \
        || log "redis-server returned non-zero; waiting for readiness anyway"
    local i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        redis_ready && return 0
        sleep 1
    done
    die "Redis did not answer PING on $REDIS_HOST:$REDIS_PORT within ${WAIT_SECONDS}s (see /var/log/redis/ci.log)"
}

if redis_ready; then
    log "Redis already up on $REDIS_HOST:$REDIS_PORT"
elif command -v redis-server >/dev/null 2>&1; then
    log "starting Redis"
    redis_start
    log "Redis started on $REDIS_HOST:$REDIS_PORT"
else
    apt_install redis-server
    command -v redis-server >/dev/null 2>&1 || die "redis-server installed but not on PATH"
    if redis_ready; then
        # The package's own init script may already have started it.
        log "Redis installed (started by the package) on $REDIS_HOST:$REDIS_PORT"
    else
        log "starting Redis"
        redis_start
        log "Redis installed and started on $REDIS_HOST:$REDIS_PORT"
    fi
fi
