// SPDX-License-Identifier: MIT
// Starts kinesalite on 127.0.0.1 on a free port (its command line would
// bind every interface) and writes "READY <port>\n" to fd 3 once listening.
// Streams become ACTIVE at once. Usage: node kinesalite.js <node_modules>
'use strict';
const fs = require('fs');
const path = require('path');

const kinesalite = require(path.join(process.argv[2], 'kinesalite'));
const server = kinesalite({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 200});
server.on('error', (e) => {
  console.error('kinesalite:', e.message);
  process.exit(1);
});
server.listen(0, '127.0.0.1', () => {
  fs.writeSync(3, `READY ${server.address().port}\n`);
  fs.closeSync(3);
});
