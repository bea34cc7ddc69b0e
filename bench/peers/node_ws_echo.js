// SPDX-License-Identifier: MIT
//
// Node's `ws` WebSocket echo server for bench/bench-ws.c:
//   NODE_PATH=.peers/node_modules node node_ws_echo.js PORT   (0 = any free port)
// Listens on 127.0.0.1, accepts upgrades on path "/", echoes text and binary
// messages unchanged (with their type), no compression (perMessageDeflate
// off). The first line on stdout is "listening on 127.0.0.1:PORT". SIGTERM
// or SIGINT exits 0. `ws` is found through NODE_PATH, or in the repository's
// .peers/node_modules when NODE_PATH does not have it.
'use strict';
const path = require('path');

let ws;
try {
    ws = require('ws');
} catch (e) {
    ws = require(path.join(__dirname, '..', '..', '.peers', 'node_modules', 'ws'));
}

const port = Number(process.argv[2] || 0);
const wss = new ws.WebSocketServer({
    host: '127.0.0.1',
    port,
    path: '/',
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
});

wss.on('connection', (sock) => {
    sock.on('message', (data, isBinary) => sock.send(data, { binary: isBinary }));
    sock.on('error', () => {});
});
wss.on('listening', () => {
    console.log(`listening on 127.0.0.1:${wss.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => process.exit(0));
}
