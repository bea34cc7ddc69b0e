#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Tests of build/examples/echo-server and echo-client as users run them:
# separate processes on 127.0.0.1, port 0, stopped by pid with a signal.
#   test-echo.sh CASE       (BUILD and CERTS_SH come from meson)
set -euo pipefail

case_name=${1:?usage: test-echo.sh CASE}
server="$BUILD/echo-server"
client="$BUILD/echo-client"
. "$(dirname "${BASH_SOURCE[0]}")/test-lib.sh"

case "$case_name" in
readme_example_echoes)
    server="$BUILD/readme-example"
    start_server 0
    "$client" 127.0.0.1 "$port" --size 100 --count 500 --conns 3 | tee "$work/c1" |
        grep -q '^echo-client: OK' || fail "$(cat "$work/c1")"
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=
    ;;
plain_round_trips)
    start_server --port 0
    head -1 "$work/server.out" | grep -Eq '^listening on 127\.0\.0\.1:[0-9]+$' ||
        fail "first line is not 'listening on HOST:PORT'"
    "$client" 127.0.0.1 "$port" --size 64 --count 2000 | tee "$work/c1" | grep -q '^echo-client: OK' ||
        fail "64 B round trips: $(cat "$work/c1")"
    "$client" 127.0.0.1 "$port" --size 65536 --count 200 --conns 8 | tee "$work/c2" |
        grep -q '^echo-client: OK' || fail "64 KiB x 8 conns: $(cat "$work/c2")"
    stop_server
    ;;
tls_round_trips)
    sh "$CERTS_SH" "$work"
    start_server --port 0 --tls "$work/server.pem" "$work/server.key"
    "$client" 127.0.0.1 "$port" --tls --ca "$work/ca.pem" --size 16384 --count 300 --conns 4 |
        tee "$work/c1" | grep -q '^echo-client: OK .* over TLS' || fail "TLS: $(cat "$work/c1")"
    # verification is on by default: without the CA the handshake must fail
    if "$client" 127.0.0.1 "$port" --tls --count 1 >"$work/c2" 2>&1; then
        fail "client trusted an unknown CA"
    fi
    grep -q 'not trusted' "$work/c2" || fail "expected an untrusted-certificate error: $(cat "$work/c2")"
    stop_server
    ;;
two_threads_serve_on_both_loops)
    start_server --port 0 --threads 2
    # 64 connections from distinct source ports: SO_REUSEPORT spreads them
    "$client" 127.0.0.1 "$port" --size 64 --count 20 --conns 64 | tee "$work/c1" |
        grep -q '^echo-client: OK' || fail "$(cat "$work/c1")"
    stop_server
    for loop in 0 1; do
        n=$(sed -n "s/^echo-server: loop $loop served \([0-9]*\) connections$/\1/p" "$work/server.err")
        [ -n "$n" ] && [ "$n" -gt 0 ] || fail "loop $loop served no connection"
    done
    ;;
sigterm_drains_and_exits_zero)
    start_server --port 0
    # a connection in progress while the signal arrives
    "$client" 127.0.0.1 "$port" --size 1024 --count 200000 >"$work/c1" 2>&1 &
    client_pid=$!
    sleep 0.3
    stop_server
    wait "$client_pid" || true # cut off after the drain period: either outcome is fine
    ;;
bad_arguments_exit_2)
    rc=0
    "$server" --port nope >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "server: bad port gave $rc"
    rc=0
    "$server" >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "server: no arguments gave $rc"
    rc=0
    "$client" 127.0.0.1 >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "client: missing port gave $rc"
    rc=0
    "$client" 127.0.0.1 1 --size 0 >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "client: size 0 gave $rc"
    ;;
*)
    fail "no such case $case_name"
    ;;
esac
echo "ok: $case_name"
