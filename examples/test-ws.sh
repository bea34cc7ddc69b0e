#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Tests of build/examples/ws-echo-server and ws-client as users run them:
# separate processes on 127.0.0.1, port 0, stopped by pid with a signal.
#   test-ws.sh CASE       (BUILD and CERTS_SH come from meson)
set -euo pipefail

case_name=${1:?usage: test-ws.sh CASE}
server="$BUILD/ws-echo-server"
client="$BUILD/ws-client"
. "$(dirname "${BASH_SOURCE[0]}")/test-lib.sh"

# 200 lines of growing length, some with multibyte UTF-8.
make_lines() {
    awk 'BEGIN { s = ""; for (i = 1; i <= 200; i++) { for (j = 0; j < 50; j++) s = s "x";
                                                      printf "line %d κόσμε %s\n", i, s } }'
}

case "$case_name" in
text_lines_echoed)
    start_server --port 0
    head -1 "$work/server.out" | grep -Eq '^listening on 127\.0\.0\.1:[0-9]+$' ||
        fail "first line is not 'listening on HOST:PORT'"
    make_lines >"$work/in"
    "$client" "ws://127.0.0.1:$port/" <"$work/in" >"$work/out" 2>"$work/client.err" ||
        fail "client failed: $(cat "$work/client.err")"
    cmp -s "$work/in" "$work/out" || fail "replies differ from the lines sent"
    printf 'bin\001\002\n' | "$client" "ws://127.0.0.1:$port/" --binary >"$work/out2" ||
        fail "binary client failed"
    printf 'bin\001\002\n' | cmp -s - "$work/out2" || fail "binary reply differs"
    stop_server TERM
    grep -q 'served 2 WebSocket connections' "$work/server.err" || fail "connection count"
    ;;
wss_round_trips)
    sh "$CERTS_SH" "$work"
    start_server --port 0 --tls "$work/server.pem" "$work/server.key"
    make_lines >"$work/in"
    "$client" "wss://localhost:$port/" --ca "$work/ca.pem" <"$work/in" >"$work/out" \
        2>"$work/client.err" || fail "wss client failed: $(cat "$work/client.err")"
    cmp -s "$work/in" "$work/out" || fail "replies over TLS differ"
    # verification is on by default: without the CA the handshake must fail
    if echo x | "$client" "wss://localhost:$port/" >"$work/c2" 2>&1; then
        fail "client trusted an unknown CA"
    fi
    grep -q 'not trusted' "$work/c2" || fail "expected an untrusted-certificate error: $(cat "$work/c2")"
    echo insecure | "$client" "wss://localhost:$port/" --insecure >"$work/c3" ||
        fail "--insecure failed"
    [ "$(cat "$work/c3")" = insecure ] || fail "--insecure reply"
    stop_server INT
    ;;
wrong_path_refused)
    start_server --port 0
    rc=0
    echo x | "$client" "ws://127.0.0.1:$port/other" >/dev/null 2>"$work/c1" || rc=$?
    [ "$rc" -eq 1 ] || fail "client on a wrong path exited $rc"
    grep -q 'handshake' "$work/c1" || fail "expected a handshake error: $(cat "$work/c1")"
    stop_server TERM
    ;;
signal_with_open_connection_exits_zero)
    start_server --port 0
    # a client with an open connection, idle on its stdin (a FIFO held open)
    mkfifo "$work/fifo"
    "$client" "ws://127.0.0.1:$port/" <"$work/fifo" >"$work/c1" 2>&1 &
    client_pid=$!
    exec 3>"$work/fifo"
    echo ping >&3
    for _ in $(seq 1 100); do
        grep -q '^ping$' "$work/c1" && break
        sleep 0.1
    done
    grep -q '^ping$' "$work/c1" || fail "no reply before the signal"
    stop_server TERM
    exec 3>&-
    wait "$client_pid" || true # the server went away: either outcome is fine
    ;;
bad_arguments_exit_2)
    rc=0
    "$server" --port nope >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "server: bad port gave $rc"
    rc=0
    "$server" >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "server: no arguments gave $rc"
    rc=0
    "$client" >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "client: no URL gave $rc"
    rc=0
    "$client" http://127.0.0.1/ >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "client: http URL gave $rc"
    ;;
*)
    fail "no such case $case_name"
    ;;
esac
echo "ok: $case_name"
