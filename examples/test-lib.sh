# SPDX-License-Identifier: MIT
#
# Shared by the examples' process tests (test-echo.sh, test-ws.sh): a scratch
# directory removed on exit, a server started on port 0 whose "listening on"
# line gives the port, and a stop by signal that must end in exit status 0.
# The sourcing script sets $server before calling start_server.
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    [ -f "$work/server.err" ] && sed 's/^/server: /' "$work/server.err" >&2
    exit 1
}

# start_server ARGS...: starts the server, waits (bounded) for its
# "listening on HOST:PORT" line and sets $port.
start_server() {
    "$server" "$@" >"$work/server.out" 2>"$work/server.err" &
    server_pid=$!
    for _ in $(seq 1 100); do
        if grep -q '^listening on ' "$work/server.out" 2>/dev/null; then
            port=$(sed -n '1s/.*:\([0-9]*\)$/\1/p' "$work/server.out")
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || fail "server exited early"
        sleep 0.1
    done
    fail "server never printed its listening line"
}

# stop_server [SIGNAL]: TERM by default; the exit status must be 0 within 10 s.
stop_server() {
    local sig=${1:-TERM}
    kill "-$sig" "$server_pid"
    for _ in $(seq 1 100); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            local rc=0
            wait "$server_pid" || rc=$?
            server_pid=
            [ "$rc" -eq 0 ] || fail "server exited with $rc after SIG$sig"
            return 0
        fi
        sleep 0.1
    done
    fail "server still running 10 s after SIG$sig"
}

