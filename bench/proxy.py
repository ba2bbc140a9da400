"""A recording reverse proxy for the JuliaRun API: timestamps each request on arrival.

The emulator counts calls but does not say when they came. This proxy sits between the
operator and the emulator, notes (wall time, operation, job name) for every API request
before forwarding it, and serves the notes at GET /_proxy/log. The token travels in the
`jruntok` query parameter: it is forwarded, never stored or logged.

    python bench/proxy.py --upstream http://127.0.0.1:PORT --port 0
    # prints "listening on http://127.0.0.1:PORT" once ready
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
from aiohttp import web

UPSTREAM, SESSION, LOG = (
    web.AppKey("upstream", str),
    web.AppKey("session", aiohttp.ClientSession),
    web.AppKey("log", list),
)


async def forward(request: web.Request) -> web.StreamResponse:
    arrived = time.time()  # before any work of ours: the moment the operator's call landed
    op = request.path.strip("/").split("/")[0]
    request.app[LOG].append((arrived, op, request.query.get("name", "")))
    url = request.app[UPSTREAM] + request.path_qs
    async with request.app[SESSION].get(url) as upstream:
        body = await upstream.read()
        return web.Response(body=body, status=upstream.status, content_type=upstream.content_type)


async def get_log(request: web.Request) -> web.Response:
    # ?op=setJobScale filters; ?since=T keeps the answer small when polled.
    op, since = request.query.get("op"), float(request.query.get("since", 0))
    rows = [r for r in request.app[LOG] if r[0] >= since and (op is None or r[1] == op)]
    return web.json_response(rows)


async def clear_log(request: web.Request) -> web.Response:
    request.app[LOG].clear()
    return web.json_response([])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    async def run() -> None:
        app = web.Application()
        app[UPSTREAM] = args.upstream.rstrip("/")
        app[LOG] = []
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        app.router.add_get("/_proxy/log", get_log)
        app.router.add_post("/_proxy/clear", clear_log)
        app.router.add_get("/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        print(f"listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
