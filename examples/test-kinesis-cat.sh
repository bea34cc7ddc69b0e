#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Tests of build/examples/kinesis-cat as users run it, against kinesalite
# (started on a free loopback port by tests/kinesis/peers/kinesalite.js,
# stopped by pid). The records are written by tests/kinesis/peers/put.js,
# a plain Node client with a KPL aggregate from npm aws-kinesis-agg, so the
# reader is checked against a writer that shares no code with it.
#   test-kinesis-cat.sh CASE     (BUILD and CN_SOURCE_ROOT come from meson)
set -euo pipefail

case_name=${1:?usage: test-kinesis-cat.sh CASE}
cat_bin="$BUILD/kinesis-cat"
peers="$CN_SOURCE_ROOT/tests/kinesis/peers"
modules="$CN_SOURCE_ROOT/.peers/node_modules"
work=$(mktemp -d)
emu_pid=
cleanup() {
    if [ -n "$emu_pid" ]; then
        kill -KILL "$emu_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

skip_unless_installed() {
    command -v node >/dev/null || { echo "skipped: node is not installed"; exit 77; }
    for p in kinesalite aws-kinesis-agg; do
        [ -f "$modules/$p/package.json" ] || { echo "skipped: npm $p not in $modules"; exit 77; }
    done
}

# start_kinesalite: starts it, waits (bounded) for "READY PORT" on fd 3, sets $port.
start_kinesalite() {
    node "$peers/kinesalite.js" "$modules" 3>"$work/ready" 2>"$work/emu.err" &
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

# The emulator ignores signatures but the client needs credentials to sign.
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KINESIS || true

case "$case_name" in
prints_every_record_across_a_split)
    skip_unless_installed
    start_kinesalite
    node "$peers/put.js" "$port" cat-test "$work/expected" || fail "put.js failed"
    timeout 60 "$cat_bin" --endpoint "http://127.0.0.1:$port" --stream cat-test \
        >"$work/out" 2>"$work/err" || fail "kinesis-cat exited $?: $(cat "$work/err")"
    sort "$work/out" >"$work/sorted"
    diff -u "$work/expected" "$work/sorted" >&2 || fail "output differs"
    [ "$(wc -l <"$work/out")" -eq 31 ] || fail "expected 31 lines"
    ;;
base64_flag_prints_all_data_as_base64)
    skip_unless_installed
    start_kinesalite
    node "$peers/put.js" "$port" cat-b64 "$work/expected" || fail "put.js failed"
    timeout 60 "$cat_bin" --stream cat-b64 --base64 --endpoint "http://127.0.0.1:$port" \
        --region eu-west-1 >"$work/out" 2>"$work/err" || fail "kinesis-cat exited $?"
    sort "$work/out" >"$work/sorted"
    diff -u "$work/expected.b64" "$work/sorted" >&2 || fail "output differs"
    ;;
missing_stream_exits_1)
    skip_unless_installed
    start_kinesalite
    rc=0
    timeout 60 "$cat_bin" --endpoint "http://127.0.0.1:$port" --stream nope \
        >"$work/out" 2>"$work/err" || rc=$?
    [ "$rc" -eq 1 ] || fail "exit status $rc, expected 1"
    grep -q 'ResourceNotFoundException' "$work/err" || fail "no error type: $(cat "$work/err")"
    [ ! -s "$work/out" ] || fail "printed records for a missing stream"
    ;;
bad_arguments_exit_2)
    for args in "" "--stream" "--stream a/b" "--endpoint http://x" "--stream s --bogus"; do
        rc=0
        # shellcheck disable=SC2086
        "$cat_bin" $args >/dev/null 2>&1 || rc=$?
        [ "$rc" -eq 2 ] || fail "'$args' exited $rc, expected 2"
    done
    ;;
*)
    fail "unknown case $case_name"
    ;;
esac
echo "ok: $case_name"
