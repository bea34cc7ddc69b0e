// SPDX-License-Identifier: MIT
//
// Bun as a WebSocket peer for tests/ws/interop.c (same commands as
// node_ws.js, except that Bun has no API to send a fragmented message: the
// server answers "fragments" with one frame, and the client skips it).
//   bun bun_peer.js server [CERT KEY]   Bun.serve websocket echo, free port
//   bun bun_peer.js client URL [CA]     the client script (built-in WebSocket)
const BIG = 16 * 1024 * 1024;

function server(cert, key) {
    const srv = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        tls: cert ? { cert: Bun.file(cert), key: Bun.file(key) } : undefined,
        fetch(req, server) {
            if (server.upgrade(req)) return undefined;
            return new Response('WebSocket only', { status: 426 });
        },
        websocket: {
            maxPayloadLength: 64 * 1024 * 1024,
            message(ws, msg) {
                const s = typeof msg === 'string' ? msg : null;
                if (s === 'fragments') ws.send('frag1frag2frag3');
                else if (s === 'ping-me') ws.ping('abc');
                else if (s !== null && s.startsWith('close ')) {
                    const [, code, ...why] = s.split(' ');
                    ws.close(Number(code), why.join(' '));
                } else ws.send(msg);
            },
            pong(ws, data) {
                ws.send('pong:' + Buffer.from(data).toString());
            },
        },
    });
    console.log(String(srv.port));
}

function fail(msg) {
    console.error('bun client: ' + msg);
    process.exit(1);
}

function open(url, ca) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { protocols: ['chat'], tls: ca ? { ca: require('fs').readFileSync(ca, 'utf8') } : undefined });
        ws.binaryType = 'arraybuffer';
        const queue = [];
        const waiters = [];
        ws.onmessage = (ev) => (waiters.length ? waiters.shift()(ev.data) : queue.push(ev.data));
        ws.next = () => new Promise((res) => (queue.length ? res(queue.shift()) : waiters.push(res)));
        ws.closed = new Promise((res) => (ws.onclose = (ev) => res([ev.code, ev.reason])));
        ws.onopen = () => resolve(ws);
        ws.onerror = (e) => reject(new Error('error ' + (e.message || e.type)));
    });
}

async function expectEcho(ws, data) {
    ws.send(data);
    const m = await ws.next();
    if (typeof data === 'string') {
        if (m !== data) fail('text echo');
    } else if (!(m instanceof ArrayBuffer) || Buffer.compare(Buffer.from(m), Buffer.from(data)) !== 0) {
        fail('binary echo of ' + data.length);
    }
}

async function client(url, ca) {
    const ws = await open(url, ca);
    if (ws.protocol !== 'chat') fail('subprotocol ' + ws.protocol);
    await expectEcho(ws, 'hello κόσμε');
    await expectEcho(ws, new Uint8Array([...Array(256).keys()]));
    const big = new Uint8Array(BIG);
    for (let i = 0; i < BIG; i++) big[i] = (i * 31 + 7) & 0xff;
    await expectEcho(ws, big);
    ws.send('close-me');
    const [code, reason] = await ws.closed;
    if (code !== 4002 || reason !== 'server bye') fail('server close ' + code + ' ' + reason);
    const ws2 = await open(url, ca);
    await expectEcho(ws2, 'second');
    ws2.close(4000, 'done');
    const [c2] = await ws2.closed;
    if (c2 !== 4000) fail('close echo ' + c2);
    console.log('OK');
    process.exit(0);
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'server') server(a, b);
else client(a, b).catch((e) => fail(String(e)));
