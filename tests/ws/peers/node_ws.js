// SPDX-License-Identifier: MIT
//
// Node `ws` as a WebSocket peer for tests/ws/interop.c.
//   node node_ws.js server [CERT KEY]   echo server on 127.0.0.1, a free port;
//                                       prints the port on the first line
//   node node_ws.js client URL [CA]     runs the client script against URL
// The server echoes every message with its type, and on the text commands:
//   "fragments"          sends "frag1frag2frag3" as three frames
//   "ping-me"            pings with "abc", answers "pong:<payload>" on the pong
//   "close <code> <why>" closes with that code and reason
// The client script checks echoes of text, binary, a fragmented message, a
// 16 MiB message, a ping, the server-initiated close "close-me" (4002
// "server bye"), then a second connection closed by the client with 4000.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocket, WebSocketServer } = require('ws');

const BIG = 16 * 1024 * 1024;

function server(cert, key) {
    const srv = cert ? https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) })
                     : http.createServer();
    const wss = new WebSocketServer({ server: srv, maxPayload: 64 * 1024 * 1024 });
    wss.on('connection', (ws) => {
        ws.on('pong', (data) => ws.send('pong:' + data.toString()));
        ws.on('message', (data, isBinary) => {
            const s = isBinary ? null : data.toString();
            if (s === 'fragments') {
                ws.send('frag1', { fin: false });
                ws.send('frag2', { fin: false });
                ws.send('frag3', { fin: true });
            } else if (s === 'ping-me') {
                ws.ping('abc');
            } else if (s !== null && s.startsWith('close ')) {
                const [, code, ...why] = s.split(' ');
                ws.close(Number(code), why.join(' '));
            } else {
                ws.send(data, { binary: isBinary });
            }
        });
    });
    srv.listen(0, '127.0.0.1', () => console.log(String(srv.address().port)));
}

function fail(msg) {
    console.error('node ws client: ' + msg);
    process.exit(1);
}

function open(url, ca) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, ['chat'], { ca: ca ? fs.readFileSync(ca) : undefined,
                                                 maxPayload: 64 * 1024 * 1024 });
        const queue = [];
        const waiters = [];
        ws.on('message', (data, isBinary) => {
            const m = { data, isBinary };
            if (waiters.length) waiters.shift()(m); else queue.push(m);
        });
        ws.next = () => new Promise((res) => queue.length ? res(queue.shift()) : waiters.push(res));
        ws.on('open', () => resolve(ws));
        ws.on('error', reject);
    });
}

async function expectEcho(ws, data, binary) {
    ws.send(data, { binary });
    const m = await ws.next();
    if (m.isBinary !== binary || Buffer.compare(Buffer.from(m.data), Buffer.from(data)) !== 0) {
        fail('echo mismatch for ' + (binary ? 'binary' : 'text') + ' of ' + data.length);
    }
}

async function client(url, ca) {
    const ws = await open(url, ca);
    if (ws.protocol !== 'chat') fail('subprotocol ' + ws.protocol);
    await expectEcho(ws, 'hello κόσμε', false);
    await expectEcho(ws, Buffer.from([...Array(256).keys()]), true);
    ws.send('frag1', { fin: false });
    ws.send('frag2', { fin: false });
    ws.send('frag3', { fin: true });
    const f = await ws.next();
    if (f.isBinary || f.data.toString() !== 'frag1frag2frag3') fail('fragmented echo');
    const big = Buffer.alloc(BIG);
    for (let i = 0; i < BIG; i++) big[i] = (i * 31 + 7) & 0xff;
    await expectEcho(ws, big, true);
    await new Promise((res) => { ws.once('pong', (d) => d.toString() === 'xyz' ? res() : fail('pong')); ws.ping('xyz'); });
    ws.send('close-me');
    const [code, reason] = await new Promise((res) => ws.on('close', (c, r) => res([c, r.toString()])));
    if (code !== 4002 || reason !== 'server bye') fail('server close ' + code + ' ' + reason);
    const ws2 = await open(url, ca);
    await expectEcho(ws2, 'second', false);
    ws2.close(4000, 'done');
    const c2 = await new Promise((res) => ws2.on('close', (c) => res(c)));
    if (c2 !== 4000) fail('close echo ' + c2);
    console.log('OK');
    process.exit(0);
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'server') server(a, b);
else client(a, b).catch((e) => fail(String(e)));
