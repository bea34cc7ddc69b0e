// SPDX-License-Identifier: MIT
// An independent Kinesis writer for the kinesis-cat test (plain Node http,
// no coronet code): creates a 2-shard stream on an emulator, puts plain
// records, a KPL aggregate made by npm aws-kinesis-agg (the official Node
// aggregation module) and, after splitting a shard, more records; writes
// the lines kinesis-cat must print (sorted) to OUT and OUT.b64 (--base64).
// Emulators do not check signatures, so the Authorization header is a
// well-formed dummy. Usage: node put.js <port> <stream> <OUT>
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

const [port, stream, out] = process.argv.slice(2);
const modules = path.join(process.env.CN_SOURCE_ROOT || path.join(__dirname, '..', '..', '..'),
  '.peers', 'node_modules');

function call(op, body) {
  const data = JSON.stringify(body);
  const date = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  return new Promise((resolve, reject) => {
    const req = http.request({host: '127.0.0.1', port, method: 'POST', path: '/', headers: {
      'Content-Type': 'application/x-amz-json-1.1',
      'X-Amz-Target': 'Kinesis_20131202.' + op,
      'X-Amz-Date': date,
      'Authorization': 'AWS4-HMAC-SHA256 Credential=AKID/' + date.slice(0, 8) +
        '/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00',
    }}, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => {
        const j = b ? JSON.parse(b) : {};
        if (res.statusCode !== 200) reject(new Error(op + ': ' + res.statusCode + ' ' + b));
        else resolve(j);
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function active() {
  for (let i = 0; i < 200; i++) {
    const d = await call('DescribeStreamSummary', {StreamName: stream});
    if (d.StreamDescriptionSummary.StreamStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('stream never ACTIVE');
}

// kinesis-cat's rule: text if printable UTF-8 (no C0/C1 controls, no DEL;
// keys also non-empty and without spaces), else base64.
function show(buf, isKey) {
  let s;
  try {
    s = new TextDecoder('utf-8', {fatal: true}).decode(buf);
  } catch (e) {
    return buf.toString('base64');
  }
  const bad = isKey ? /[\u0000-\u0020\u007f-\u009f]/ : /[\u0000-\u001f\u007f-\u009f]/;
  if ((isKey && s.length === 0) || bad.test(s)) return buf.toString('base64');
  return s;
}

const lines = [];
const lines64 = [];
function expect(pk, seq, data) {
  const k = show(Buffer.from(pk, 'utf8'), true);
  lines.push(k + ' ' + seq + ' ' + show(data, false));
  lines64.push(k + ' ' + seq + ' ' + data.toString('base64'));
}

async function put(pk, data, ehk) {
  const body = {StreamName: stream, PartitionKey: pk, Data: data.toString('base64')};
  if (ehk) body.ExplicitHashKey = ehk;
  return (await call('PutRecord', body)).SequenceNumber;
}

async function main() {
  await call('CreateStream', {StreamName: stream, ShardCount: 2});
  await active();
  const plain = [
    ['user-1', Buffer.from('hello world')],
    ['user-2', Buffer.from('line1\nline2')],
    ['ключ', Buffer.from('héllo €')],
    ['a b', Buffer.from('key with a space')],
    ['bin', Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80])],
    ['tab', Buffer.from('a\tb')],
  ];
  for (const [pk, data] of plain) expect(pk, await put(pk, data), data);

  const agg = require(path.join(modules, 'aws-kinesis-agg'));
  const a = new agg.RecordAggregator();
  const users = [];
  for (let i = 0; i < 5; i++) {
    const u = {partitionKey: 'agg-' + i, data: Buffer.from('aggregated record ' + i)};
    users.push(u);
    a.addUserRecord(u);
  }
  const enc = a.build();
  const seq = await put(enc.partitionKey, enc.data, enc.ExplicitHashKey);
  users.forEach((u, i) => expect(u.partitionKey, seq + '/' + i, u.data));

  const shards = (await call('ListShards', {StreamName: stream})).Shards;
  const s0 = shards[0];
  const lo = BigInt(s0.HashKeyRange.StartingHashKey), hi = BigInt(s0.HashKeyRange.EndingHashKey);
  await call('SplitShard', {StreamName: stream, ShardToSplit: s0.ShardId,
    NewStartingHashKey: ((lo + hi) / 2n).toString()});
  await active();
  for (let i = 0; i < 20; i++) {
    const pk = 'after-split-' + i, data = Buffer.from('after the split ' + i);
    expect(pk, await put(pk, data), data);
  }
  fs.writeFileSync(out, lines.sort().join('\n') + '\n');
  fs.writeFileSync(out + '.b64', lines64.sort().join('\n') + '\n');
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
