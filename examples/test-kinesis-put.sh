#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Tests of build/examples/kinesis-put as users run it, against kinesalite
# (started on a free loopback port, stopped by pid): records go in through
# stdin and are read back with build/examples/kinesis-cat; the streams are
# made with plain HTTP calls (curl), and keys and shards are checked in
# Node with kinesalite's own sequence number parser, so the checks share no
# code with the producer.
#   test-kinesis-put.sh CASE     (BUILD and CN_SOURCE_ROOT come from meson)
set -euo pipefail

case_name=${1:?usage: test-kinesis-put.sh CASE}
put_bin="$BUILD/kinesis-put"
cat_bin="$BUILD/kinesis-cat"
# shellcheck source=examples/test-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/test-lib.sh"

# The emulator ignores signatures but the client needs credentials to sign.
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KINESIS AWS_REGION \
    AWS_DEFAULT_REGION || true

skip_unless_installed() {
    kinesalite_installed || { echo "skipped: node or npm kinesalite missing (scripts/setup)"; exit 77; }
    command -v curl >/dev/null || { echo "skipped: curl is not installed"; exit 77; }
}

# setup STREAM: kinesalite with a fresh 2-shard stream.
setup() {
    skip_unless_installed
    start_kinesalite
    endpoint="http://127.0.0.1:$port"
    create_stream "$1" 2
}

# put STREAM ARGS... < input: runs kinesis-put; its stderr goes to
# $work/put.err and its exit status to $put_rc.
put() {
    local stream=$1
    shift
    put_rc=0
    timeout 60 "$put_bin" --endpoint "$endpoint" --stream "$stream" "$@" 2>"$work/put.err" ||
        put_rc=$?
}

# read_back STREAM [--base64]: every record of the stream, as kinesis-cat
# prints them ("KEY SEQ DATA"), into $work/cat.out.
read_back() {
    local stream=$1
    shift
    timeout 60 "$cat_bin" --endpoint "$endpoint" --stream "$stream" "$@" >"$work/cat.out" \
        2>"$work/cat.err" || fail "kinesis-cat exited $?: $(cat "$work/cat.err")"
}

# data_of: the DATA column of kinesis-cat's output (it may contain spaces), sorted.
data_of() {
    cut -d' ' -f3- "$work/cat.out" | LC_ALL=C sort
}

# expect_summary PUT SUCCEEDED FAILED: the last line of kinesis-put's stderr.
expect_summary() {
    tail -n 1 "$work/put.err" | grep -q "^kinesis-put: $1 records put, $2 succeeded, $3 failed, " ||
        fail "summary is not '$1 put, $2 succeeded, $3 failed': $(tail -n 1 "$work/put.err")"
}

# Lines of printable text (spaces, UTF-8), duplicates included, and blank
# lines that kinesis-put skips.
make_lines() {
    awk -v n="$1" 'BEGIN {
        srand(7)
        for (i = 1; i <= n; i++) {
            if (i % 500 == 0) { print ""; }
            if (i % 100 == 0) { print "the same line, again"; continue; }
            s = "line " i " héllo"
            k = int(rand() * 40)
            for (j = 0; j < k; j++) { s = s sprintf("%c", 33 + int(rand() * 94)); }
            if (i % 7 == 0) { s = s "  with  spaces "; }
            print s
        }
    }'
}

case "$case_name" in
lines_round_trip)
    setup lines
    make_lines 5000 >"$work/in"
    put lines <"$work/in"
    [ "$put_rc" -eq 0 ] || fail "kinesis-put exited $put_rc: $(cat "$work/put.err")"
    expect_summary 5000 5000 0
    read_back lines
    grep -v '^$' "$work/in" | LC_ALL=C sort >"$work/expected"
    data_of >"$work/got"
    cmp -s "$work/expected" "$work/got" || {
        diff -u "$work/expected" "$work/got" | head -20 >&2
        fail "records read back differ from the lines put"
    }
    ;;
key_field_groups_by_shard)
    setup users
    # 2,000 JSON lines, 60 users (string keys, and numbers for some).
    awk 'BEGIN {
        for (i = 1; i <= 2000; i++) {
            u = i % 60
            key = u % 5 == 0 ? u * 1000 : "\"user-" u "\""
            printf "{\"n\":%d,\"user\":%s,\"pad\":\"%0*d\"}\n", i, key, i % 50 + 1, 0
        }
    }' >"$work/in"
    put users --key-field user <"$work/in"
    [ "$put_rc" -eq 0 ] || fail "kinesis-put exited $put_rc: $(cat "$work/put.err")"
    expect_summary 2000 2000 0
    read_back users
    LC_ALL=C sort "$work/in" >"$work/expected"
    data_of >"$work/got"
    cmp -s "$work/expected" "$work/got" || fail "records read back differ from the lines put"
    # Each record's key is its "user" field, and it sits on the shard its
    # key hashes to (MD5, 2 shards split at 2^127) as kinesalite numbers it.
    node - "$CN_SOURCE_ROOT/.peers/node_modules" "$work/cat.out" <<'EOF' || fail "keys or shards wrong"
const crypto = require('crypto');
const fs = require('fs');
const db = require(require('path').join(process.argv[2], 'kinesalite', 'db'));
const shardOf = {};
let n = 0;
for (const line of fs.readFileSync(process.argv[3], 'utf8').split('\n')) {
  if (!line) continue;
  const [key, seq] = line.split(' ', 2);
  const data = JSON.parse(line.slice(key.length + seq.length + 2));
  if (String(data.user) !== key) throw new Error(`key ${key} for user ${data.user}`);
  const shard = db.parseSequence(seq.split('/')[0]).shardIx;
  const want = crypto.createHash('md5').update(key).digest()[0] >> 7;
  if (shard !== want) throw new Error(`${key} on shard ${shard}, hashes to ${want}`);
  if (key in shardOf && shardOf[key] !== shard) throw new Error(`${key} on two shards`);
  shardOf[key] = shard;
  n++;
}
const used = new Set(Object.values(shardOf));
if (n !== 2000 || Object.keys(shardOf).length !== 60 || used.size !== 2) {
  throw new Error(`${n} records, ${Object.keys(shardOf).length} keys, ${used.size} shards`);
}
EOF
    ;;
length_prefixed_binary_round_trip)
    setup bin
    # 600 records of random bytes (NUL and newline in most), lengths 0..3000,
    # some duplicates; the expected base64 of each, sorted.
    node - "$work/in" "$work/expected" <<'EOF'
const crypto = require('crypto');
const fs = require('fs');
const parts = [], b64 = [];
for (let i = 0; i < 600; i++) {
  const data = i % 50 === 49 ? Buffer.from('dup\0\n') : crypto.randomBytes(i % 3001);
  if (data.length > 2) { data[0] = 0; data[1] = 10; }
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  parts.push(len, data);
  b64.push(data.toString('base64'));
}
fs.writeFileSync(process.argv[2], Buffer.concat(parts));
fs.writeFileSync(process.argv[3], b64.sort().join('\n') + '\n');
EOF
    put bin --length-prefixed <"$work/in"
    [ "$put_rc" -eq 0 ] || fail "kinesis-put exited $put_rc: $(cat "$work/put.err")"
    expect_summary 600 600 0
    read_back bin --base64
    data_of >"$work/got"
    cmp -s "$work/expected" "$work/got" || fail "records read back differ from the records put"
    ;;
length_prefixed_truncated_exits_1)
    setup trunc
    # Three whole records, then a length of 10 followed by 3 bytes.
    printf '\0\0\0\3abc\0\0\0\1d\0\0\0\2ef\0\0\0\12ghi' >"$work/in"
    put trunc --length-prefixed <"$work/in"
    [ "$put_rc" -eq 1 ] || fail "exit status $put_rc, expected 1"
    grep -q '^kinesis-put: record 4: the input ends inside' "$work/put.err" ||
        fail "no clear message: $(cat "$work/put.err")"
    expect_summary 3 3 0
    read_back trunc
    [ "$(data_of | tr '\n' ' ')" = "abc d ef " ] || fail "stored: $(data_of | tr '\n' ' ')"
    ;;
missing_stream_exits_1)
    skip_unless_installed
    start_kinesalite
    endpoint="http://127.0.0.1:$port"
    make_lines 50000 >"$work/in"
    put nope <"$work/in"
    [ "$put_rc" -eq 1 ] || fail "exit status $put_rc, expected 1"
    grep -q '^kinesis-put: stopping.*stream nope: ResourceNotFoundException' "$work/put.err" ||
        fail "no clear message: $(cat "$work/put.err")"
    [ "$(grep -c ResourceNotFound "$work/put.err")" -eq 1 ] || fail "reported more than once"
    tail -n 1 "$work/put.err" | grep -q ' 0 succeeded, ' || fail "$(tail -n 1 "$work/put.err")"
    ;;
garbage_json_counted_as_failed)
    setup mixed
    # 308 lines: 300 good ones and, at lines 3, 50, 51, 120, 200, 250, 299
    # and 308, one bad in its own way each.
    awk -v good="$work/good" 'BEGIN {
        bad[3] = "not json"; bad[50] = "[1,2,3]"; bad[51] = "{\"name\":\"x\"}"
        bad[120] = "{\"user\":{\"id\":1}}"; bad[200] = "{\"user\":\"a\"} trailing"
        bad[250] = "{\"user\":\"\"}"; bad[299] = "{\"user\":null}"; bad[308] = "{\"user\":"
        for (n = 1; n <= 308; n++) {
            if (n in bad) { print bad[n]; continue }
            g++
            line = sprintf("{\"user\":\"u%d\",\"i\":%d}", g % 7, g)
            print line
            print line >good
        }
    }' >"$work/in"
    [ "$(wc -l <"$work/in")" -eq 308 ] || fail "generated $(wc -l <"$work/in") lines"
    put mixed --key-field user <"$work/in"
    [ "$put_rc" -eq 1 ] || fail "exit status $put_rc, expected 1"
    for n in 3 50 51 120 200 250 299 308; do
        grep -q "^kinesis-put: line $n: " "$work/put.err" || fail "line $n not reported"
    done
    [ "$(grep -c '^kinesis-put: line ' "$work/put.err")" -eq 8 ] || fail "other lines reported"
    expect_summary 308 300 8
    read_back mixed
    LC_ALL=C sort "$work/good" >"$work/expected"
    data_of >"$work/got"
    cmp -s "$work/expected" "$work/got" || fail "stored records are not the 300 good lines"
    ;;
sigterm_flushes_and_exits_0)
    setup sig
    # stdin stays open and idle: the signal must still stop the read.
    mkfifo "$work/fifo"
    "$put_bin" --endpoint "$endpoint" --stream sig <"$work/fifo" 2>"$work/put.err" &
    pid=$!
    exec 7>"$work/fifo"
    seq 1 1000 >&7
    for _ in $(seq 1 100); do
        grep -q ' 1000 succeeded' "$work/put.err" && break
        sleep 0.1
    done
    kill -TERM "$pid"
    rc=0
    timeout 10 tail --pid="$pid" -f /dev/null || fail "still running 10 s after SIGTERM"
    wait "$pid" || rc=$?
    exec 7>&-
    [ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM: $(cat "$work/put.err")"
    grep -q '^kinesis-put: SIGTERM: stopping' "$work/put.err" || fail "no stop message"
    expect_summary 1000 1000 0
    read_back sig
    [ "$(wc -l <"$work/cat.out")" -eq 1000 ] || fail "$(wc -l <"$work/cat.out") records stored"
    ;;
metrics_port_serves_prometheus)
    setup met
    mkfifo "$work/fifo"
    "$put_bin" --endpoint "$endpoint" --stream met --metrics-port 0 --quiet <"$work/fifo" \
        2>"$work/put.err" &
    pid=$!
    exec 7>"$work/fifo"
    seq 1 100 >&7
    mport=
    for _ in $(seq 1 100); do
        mport=$(sed -n 's|^kinesis-put: metrics on http://127.0.0.1:\([0-9]*\)/metrics$|\1|p' \
            "$work/put.err")
        if [ -n "$mport" ] &&
            curl -sS "http://127.0.0.1:$mport/metrics" >"$work/metrics" 2>/dev/null &&
            grep -q '^coronet_kinesis_.*succeeded.*{stream="met"} 100$' "$work/metrics"; then
            break
        fi
        sleep 0.1
    done
    exec 7>&-
    rc=0
    wait "$pid" || rc=$?
    [ -n "$mport" ] || fail "no metrics line: $(cat "$work/put.err")"
    grep -q '^coronet_kinesis_.*succeeded.*{stream="met"} 100$' "$work/metrics" ||
        fail "no succeeded counter of 100 in: $(head -c 2000 "$work/metrics")"
    [ "$rc" -eq 0 ] || fail "exit status $rc"
    ;;
readme_kinesis_example_puts)
    setup demo
    out=$(AWS_ENDPOINT_URL_KINESIS=$endpoint AWS_REGION=us-east-1 timeout 60 \
        "$BUILD/readme-kinesis" demo 2>"$work/err") || fail "readme-kinesis: $(cat "$work/err")"
    [[ $out =~ ^shardId-[0-9]+\ [0-9]+$ ]] || fail "printed '$out'"
    read_back demo
    [ "$(cut -d' ' -f1,3 "$work/cat.out")" = "user-42 hello" ] || fail "stored: $(cat "$work/cat.out")"
    [ "$(cut -d' ' -f2 "$work/cat.out")" = "${out#* }" ] || fail "another sequence number"
    ;;
bad_arguments_exit_2)
    for args in "" "--stream" "--stream a/b" "--endpoint http://x" "--stream s --bogus" \
        "--stream s --key a --key-field b" "--stream s --key-field" \
        "--stream s --max-outstanding 0" "--stream s --ttl-ms 10x" "--stream s --buffered-ms -1" \
        "--stream s --metrics-port 70000" "s"; do
        rc=0
        # shellcheck disable=SC2086
        "$put_bin" $args </dev/null >/dev/null 2>"$work/err" || rc=$?
        [ "$rc" -eq 2 ] || fail "'$args' exited $rc, expected 2"
        grep -q '^usage: kinesis-put' "$work/err" || fail "'$args': no usage line"
    done
    rc=0
    "$put_bin" --stream s --key "" </dev/null >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "an empty --key exited $rc, expected 2"
    ;;
*)
    fail "unknown case $case_name"
    ;;
esac
echo "ok: $case_name"
