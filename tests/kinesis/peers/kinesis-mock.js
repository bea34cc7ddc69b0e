// SPDX-License-Identifier: MIT
// Starts kinesis-mock (npm kinesis-local) from inside its package directory
// (it reads server.json, its TLS certificate, relative to the working
// directory) on two free ports, plain and TLS, with its artificial delays
// shortened, then polls until it answers and writes
// "READY <plain port> <tls port>\n" to fd 3.
// It binds all interfaces whatever is asked: talk to it on 127.0.0.1 only.
// Usage: node kinesis-mock.js <node_modules>
'use strict';
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');

const pkg = path.join(process.argv[2], 'kinesis-local');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
}

function env(name, value) {
  if (!process.env[name]) process.env[name] = value;
}

function probe(port) {
  return new Promise((resolve) => {
    const req = http.request({host: '127.0.0.1', port, method: 'POST', path: '/',
      headers: {'Content-Type': 'application/x-amz-json-1.1',
        'X-Amz-Target': 'Kinesis_20131202.ListStreams'}}, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.setTimeout(1000, () => { req.destroy(); });
    req.end('{}');
  });
}

async function main() {
  const plain = await freePort();
  let tls = await freePort();
  while (tls === plain) tls = await freePort();
  process.env.KINESIS_MOCK_PLAIN_PORT = String(plain);
  process.env.KINESIS_MOCK_TLS_PORT = String(tls);
  for (const d of ['CREATE_STREAM', 'DELETE_STREAM', 'MERGE_SHARDS', 'SPLIT_SHARD',
    'UPDATE_SHARD_COUNT', 'REGISTER_STREAM_CONSUMER', 'DEREGISTER_STREAM_CONSUMER',
    'START_STREAM_ENCRYPTION', 'STOP_STREAM_ENCRYPTION', 'UPDATE_STREAM_MODE']) {
    env(d + '_DURATION', '0ms');
  }
  env('LOG_LEVEL', 'ERROR');
  env('SHARD_LIMIT', '200');
  process.chdir(pkg);
  require(path.join(pkg, 'main.js'));
  const until = Date.now() + 60000;
  while (!(await probe(plain))) {
    if (Date.now() > until) {
      console.error('kinesis-mock did not answer within 60 s');
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  fs.writeSync(3, `READY ${plain} ${tls}\n`);
  fs.closeSync(3);
}

main().catch((e) => {
  console.error('kinesis-mock:', e);
  process.exit(1);
});
