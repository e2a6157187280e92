"""The baseline: a bare aiohttp endpoint that only parses the form and answers 204."""

import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(status=204)


app = web.Application()
app.router.add_route("*", "/v1/Callbacks/Rooms", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
