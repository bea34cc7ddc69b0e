// SPDX-License-Identifier: MIT
// The Node reference of bench-kinesis: KPL aggregation with npm
// aws-kinesis-agg (the official Node aggregation module) sent with the AWS
// SDK v3 (@aws-sdk/client-kinesis) over HTTP/1.1 keep-alive
// (@smithy/node-http-handler; the emulators do not speak HTTP/2).
//
//   node node_kpl_put.js ENDPOINT STREAM COUNT SIZE [IN_FLIGHT]
//
// Puts COUNT user records of SIZE bytes into STREAM (existing and ACTIVE):
// RecordAggregator packs them into aggregates of up to 1 MiB, each sent
// with PutRecord (the module's documented pattern) as soon as it is built,
// at most IN_FLIGHT (default 4) requests at once. Record i has partition
// key "pk-<i>" and data byte j equal to (i + j) mod 256, as every
// bench-kinesis implementation writes them.
//
// Prints one JSON line: {"records": N, "failed": F, "elapsed_s": T, "cpu_s": C}
// with N user records acknowledged, F in aggregates that failed (after the
// SDK's own retries), T the wall time from the first record aggregated to
// the last answer (client and records made before) and C the process CPU
// over the same span. Modules come from $CN_SOURCE_ROOT/.peers/node_modules.
'use strict';
const http = require('http');
const path = require('path');

const modules = path.join(process.env.CN_SOURCE_ROOT || path.join(__dirname, '..', '..'),
  '.peers', 'node_modules');
const {RecordAggregator} = require(path.join(modules, 'aws-kinesis-agg'));
const {KinesisClient, PutRecordCommand} = require(path.join(modules, '@aws-sdk/client-kinesis'));
const {NodeHttpHandler} = require(path.join(modules, '@smithy/node-http-handler'));

function records(count, size) {
  const out = new Array(count);
  for (let i = 0; i < count; i++) {
    const data = Buffer.allocUnsafe(size);
    for (let j = 0; j < size; j++) data[j] = (i + j) & 255;
    out[i] = {partitionKey: 'pk-' + i, data};
  }
  return out;
}

async function main() {
  const [endpoint, stream, countArg, sizeArg, inFlightArg] = process.argv.slice(2);
  if (!stream) {
    console.error('usage: node node_kpl_put.js ENDPOINT STREAM COUNT SIZE [IN_FLIGHT]');
    process.exit(2);
  }
  const count = Number(countArg), size = Number(sizeArg), maxInFlight = Number(inFlightArg || 4);
  const client = new KinesisClient({
    endpoint,
    region: 'us-east-1',
    credentials: {accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret'},
    requestHandler: new NodeHttpHandler({
      httpAgent: new http.Agent({keepAlive: true, maxSockets: maxInFlight}),
      requestTimeout: 120000,
    }),
  });
  const recs = records(count, size);
  let acked = 0, failed = 0, inFlight = 0;
  let wake = null; // resolves when a request ends and a slot is free

  function send(n, enc) {
    inFlight++;
    const input = {StreamName: stream, PartitionKey: enc.partitionKey, Data: enc.data};
    if (enc.ExplicitHashKey) input.ExplicitHashKey = enc.ExplicitHashKey;
    client.send(new PutRecordCommand(input)).then(() => { acked += n; }, (e) => {
      failed += n;
      console.error('node_kpl: PutRecord failed:', e.name, e.message);
    }).finally(() => {
      inFlight--;
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    });
  }

  async function slot(limit) {
    while (inFlight >= limit) await new Promise((resolve) => { wake = resolve; });
  }

  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const agg = new RecordAggregator();
  for (const r of recs) {
    if (!agg.checkIfUserRecordFits(r)) {
      await slot(maxInFlight);
      send(agg.length(), agg.build());
    }
    agg.addUserRecord(r);
  }
  if (agg.length() > 0) {
    await slot(maxInFlight);
    send(agg.length(), agg.build());
  }
  await slot(1);
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  console.log(JSON.stringify({records: acked, failed, elapsed_s: elapsed,
    cpu_s: (cpu.user + cpu.system) / 1e6}));
  client.destroy();
}

main().catch((e) => {
  console.error('node_kpl:', e);
  process.exit(1);
});
