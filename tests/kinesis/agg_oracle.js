// SPDX-License-Identifier: MIT
//
// The oracle for the KPL aggregation codec: npm aws-kinesis-agg, the
// official Node aggregation module (installed into $CN_SOURCE_ROOT/.peers
// by scripts/setup). tests/kinesis/agg.c runs it both ways:
//
//   node agg_oracle.js deagg AGG_FILE...
//       Deaggregates each file (the data of one Kinesis record) with
//       deaggregateSync(checksums on) and prints, per file, a line
//       "aggregate N" then one line per user record:
//           <pk hex> <ehk hex or -> <data hex>
//       or "error <message>".
//
//   node agg_oracle.js agg RECORDS_FILE OUT_FILE
//       Aggregates the records of RECORDS_FILE (lines as above) in order
//       with RecordAggregator, writes the aggregate bytes to OUT_FILE and
//       prints "<outer pk hex> <outer ehk hex or ->".
//
// Keys travel as the hex of their UTF-8 bytes; the module takes strings.
'use strict';
const fs = require('fs');
const path = require('path');

const root = process.env.CN_SOURCE_ROOT || path.join(__dirname, '..', '..');
const modDir = path.join(root, '.peers', 'node_modules', 'aws-kinesis-agg');
const agg = require(modDir);
// The module's own protobuf model, to see which records carry an explicit
// hash key index: deaggregate() looks up explicit_hash_key_table[index]
// with protobufjs's default 0 for an absent index, so it reports entry 0
// for records that have none. Records, keys and data otherwise come from
// deaggregateSync() itself.
const model = require(path.join(modDir, 'lib', 'common')).AggregatedRecord;
const MAGIC = Buffer.from('f3899ac2', 'hex');

const hex = (s) => (s === undefined || s === null ? '-' : Buffer.from(s, 'utf8').toString('hex'));
const unhex = (h) => (h === '-' ? undefined : Buffer.from(h, 'hex').toString('utf8'));

function deaggFile(file) {
    const data = fs.readFileSync(file);
    const kinesisRecord = {
        partitionKey: 'outer',
        sequenceNumber: '1',
        data: data.toString('base64'),
    };
    const out = [];
    let hasEhk = [];
    if (data.length > 20 && data.subarray(0, 4).equals(MAGIC)) {
        try {
            const m = model.decode(data.subarray(4, data.length - 16));
            hasEhk = m.records.map((r) => Object.prototype.hasOwnProperty.call(r, 'explicit_hash_key_index'));
        } catch (e) {
            hasEhk = [];
        }
    }
    agg.deaggregateSync(kinesisRecord, true, (err, records) => {
        if (err) {
            out.push('error ' + String(err.message || err).replace(/\n/g, ' '));
            return;
        }
        out.push('aggregate ' + records.length);
        records.forEach((r, i) => {
            const d = Buffer.from(r.data, 'base64').toString('hex');
            const ehk = hasEhk[i] ? r.explicitPartitionKey : undefined;
            out.push(hex(r.partitionKey) + ' ' + hex(ehk) + ' ' + d);
        });
    });
    return out.join('\n');
}

function aggFile(recordsFile, outFile) {
    const lines = fs.readFileSync(recordsFile, 'utf8').split('\n').filter((l) => l.length > 0);
    const a = new agg.RecordAggregator();
    for (const line of lines) {
        const [pk, ehk, data] = line.split(' ');
        const rec = { partitionKey: unhex(pk), data: Buffer.from(data || '', 'hex') };
        const e = unhex(ehk);
        if (e !== undefined) {
            rec.explicitHashKey = e;
        }
        a.addUserRecord(rec);
    }
    const encoded = a.build();
    fs.writeFileSync(outFile, encoded.data);
    return hex(encoded.partitionKey) + ' ' + hex(encoded.ExplicitHashKey);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'deagg') {
    process.stdout.write(args.map(deaggFile).join('\n') + '\n');
} else if (mode === 'agg' && args.length === 2) {
    process.stdout.write(aggFile(args[0], args[1]) + '\n');
} else {
    process.stderr.write('usage: agg_oracle.js deagg FILE... | agg RECORDS OUT\n');
    process.exit(2);
}
