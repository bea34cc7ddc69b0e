# SPDX-License-Identifier: MIT
#
# python3-websockets (Debian bookworm: 10.4, asyncio API) as a WebSocket
# peer for tests/ws/interop.c, with the same commands as node_ws.js.
#   python3 python_websockets.py server [CERT KEY]
#   python3 python_websockets.py client URL [CA]
import asyncio
import ssl
import sys

import websockets

BIG = 16 * 1024 * 1024


async def handler(ws, path=None):
    async for msg in ws:
        if msg == "fragments":
            await ws.send(iter(["frag1", "frag2", "frag3"]))
        elif msg == "ping-me":
            waiter = await ws.ping(b"abc")
            await waiter
            await ws.send("pong:abc")
        elif isinstance(msg, str) and msg.startswith("close "):
            _, code, *why = msg.split(" ")
            await ws.close(int(code), " ".join(why))
        else:
            await ws.send(msg)


async def server(cert=None, key=None):
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    async with websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=None,
                                compression=None) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


def fail(msg):
    print("python client: " + msg, file=sys.stderr)
    sys.exit(1)


async def expect_echo(ws, data):
    await ws.send(data)
    got = await ws.recv()
    if type(got) != type(data) or got != data:
        fail("echo mismatch for %s of %d" % (type(data).__name__, len(data)))


async def client(url, ca=None):
    ctx = ssl.create_default_context(cafile=ca) if url.startswith("wss:") else None
    kw = dict(ssl=ctx, max_size=None, subprotocols=["chat"], compression=None)
    async with websockets.connect(url, **kw) as ws:
        if ws.subprotocol != "chat":
            fail("subprotocol %r" % ws.subprotocol)
        await expect_echo(ws, "hello κόσμε")
        await expect_echo(ws, bytes(range(256)))
        await ws.send(iter(["frag1", "frag2", "frag3"]))
        if await ws.recv() != "frag1frag2frag3":
            fail("fragmented echo")
        await expect_echo(ws, bytes(range(256)) * (BIG // 256))
        await asyncio.wait_for(await ws.ping(b"xyz"), 10)
        await ws.send("close-me")
        try:
            await ws.recv()
            fail("no close")
        except websockets.ConnectionClosed:
            pass
        if ws.close_code != 4002 or ws.close_reason != "server bye":
            fail("server close %r %r" % (ws.close_code, ws.close_reason))
    async with websockets.connect(url, **kw) as ws2:
        await expect_echo(ws2, "second")
        await ws2.close(4000, "done")
        if ws2.close_code != 4000:
            fail("close echo %r" % ws2.close_code)
    print("OK", flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    asyncio.run(server(*args) if mode == "server" else client(*args))
