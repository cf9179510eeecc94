# bench/lib.sh: how every benchmark that runs the gateway starts (sourced by
# bench/*.sh from the repository root): the tools it needs, a work folder,
# its own PostgreSQL and Redis (scripts/services; their variables exported),
# and a cleanup on exit that stops whatever the script started.

# Exits with a message when a tool is missing (looked up in PATH and /usr/sbin).
bench_need() {
    for t in "$@"; do
        command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] ||
            { echo "bench: $t missing: run scripts/setup" >&2; exit 1; }
    done
    [ -x build/gateway/tollgate ] || { echo "bench: build first (scripts/setup)" >&2; exit 1; }
}

# bench_start NAME: sets $work (/tmp/tollgate-NAME.XXXXXX) and pids=(), starts
# PostgreSQL and Redis under $work/services and exports TG_PG_CONNINFO and the
# rest. On exit: kills the processes in pids and nginx (pid in
# $work/nginx.pid), stops the services and removes $work.
bench_start() {
    work=$(mktemp -d "/tmp/tollgate-$1.XXXXXX")
    pids=()
    trap bench_finish EXIT
    scripts/services start "$work/services" >/dev/null
    set -a
    . "$work/services/services.env"
    set +a
}

bench_finish() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    scripts/services stop "$work/services" >/dev/null 2>&1 || true
    rm -rf "$work"
}
