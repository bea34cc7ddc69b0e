# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Shared by the examples' process tests (test-echo.sh, test-ws.sh,
# test-kinesis-put.sh) and scripts/kinesis-demo: a scratch directory removed
# on exit, a server started on port 0 whose "listening on" line gives the
# port, a stop by signal that must end in exit status 0, and kinesalite on a
# free port with a few Kinesis calls to set streams up.
# The sourcing script sets $server before calling start_server.
work=$(mktemp -d)
server_pid=
emu_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$emu_pid" ]; then
        kill -KILL "$emu_pid" 2>/dev/null || true
        wait "$emu_pid" 2>/dev/null || true # reaped quietly: no "Killed" notice
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


# ---- kinesalite --------------------------------------------------------------

# kinesalite_installed: true if node and the npm package are there
# (scripts/setup installs them under $CN_SOURCE_ROOT/.peers).
kinesalite_installed() {
    command -v node >/dev/null && [ -f "$CN_SOURCE_ROOT/.peers/node_modules/kinesalite/package.json" ]
}

# start_kinesalite: starts tests/kinesis/peers/kinesalite.js, waits (bounded)
# for "READY PORT" on its fd 3 and sets $port; stopped by pid on exit.
start_kinesalite() {
    node "$CN_SOURCE_ROOT/tests/kinesis/peers/kinesalite.js" "$CN_SOURCE_ROOT/.peers/node_modules" \
        3>"$work/ready" 2>"$work/emu.err" &
    emu_pid=$!
    for _ in $(seq 1 300); do
        if grep -q '^READY ' "$work/ready" 2>/dev/null; then
            port=$(awk '{print $2}' "$work/ready")
            return 0
        fi
        kill -0 "$emu_pid" 2>/dev/null || fail "kinesalite exited early: $(cat "$work/emu.err")"
        sleep 0.1
    done
    fail "kinesalite never became ready"
}

# kinesis_call OPERATION JSON: one Kinesis API call to kinesalite on $port;
# prints the response body, fails unless the status is 200. The emulator
# does not check signatures, so the Authorization header is a dummy.
kinesis_call() {
    local out status
    out=$(curl -sS -X POST -H 'Content-Type: application/x-amz-json-1.1' \
        -H "X-Amz-Target: Kinesis_20131202.$1" -H "X-Amz-Date: $(date -u +%Y%m%dT%H%M%SZ)" \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00' \
        --data "$2" -w '\n%{http_code}' "http://127.0.0.1:$port/") || return 1
    status=${out##*$'\n'}
    printf '%s\n' "${out%$'\n'*}"
    [ "$status" = 200 ]
}

# create_stream NAME SHARDS: creates the stream and waits (bounded) until ACTIVE.
create_stream() {
    kinesis_call CreateStream "{\"StreamName\":\"$1\",\"ShardCount\":$2}" >/dev/null ||
        fail "CreateStream $1 failed"
    for _ in $(seq 1 100); do
        if kinesis_call DescribeStreamSummary "{\"StreamName\":\"$1\"}" |
            grep -q '"StreamStatus":"ACTIVE"'; then
            return 0
        fi
        sleep 0.1
    done
    fail "stream $1 never became ACTIVE"
}
