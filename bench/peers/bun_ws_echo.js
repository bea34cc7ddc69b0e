// SPDX-License-Identifier: MIT
//
// Bun's WebSocket echo server (uWebSockets inside) for bench/bench-ws.c:
//   bun bun_ws_echo.js PORT        (0 = any free port)
// Listens on 127.0.0.1, upgrades every request on path "/", echoes text and
// binary messages unchanged, no compression. The first line on stdout is
// "listening on 127.0.0.1:PORT". SIGTERM or SIGINT exits 0.
const port = Number(process.argv[2] || 0);

const server = Bun.serve({
    hostname: '127.0.0.1',
    port,
    fetch(req, server) {
        if (new URL(req.url).pathname === '/' && server.upgrade(req)) return undefined;
        return new Response('WebSocket only on /\n', { status: 426 });
    },
    websocket: {
        perMessageDeflate: false,
        maxPayloadLength: 64 * 1024 * 1024,
        message(ws, m) {
            ws.send(m);
        },
    },
});

console.log(`listening on 127.0.0.1:${server.port}`);
for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
        server.stop(true);
        process.exit(0);
    });
}
