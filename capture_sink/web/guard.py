"""Who may use the web page and the API: whoever has the token (on localhost too), from this machine's names.

- Every request must carry the token (made on the first start, capture_sink/web/token.py):
  `Authorization: Bearer TOKEN`, or `?token=TOKEN` once (the page then keeps it in an HttpOnly,
  SameSite=Strict cookie and drops it from the address bar). Compared in constant time. Only an
  explicit `--no-http-auth` (loopback only, logged as a warning) serves without one.
- On a loopback address the Host header must name this machine (localhost, 127.x.x.x, ::1),
  token or not: a web site that re-points its own name at 127.0.0.1 (DNS rebinding) must get
  nothing, not even a 401 that tells it holocam runs here.
- Requests that change something (POST) must not come from another site: a browser names the
  page that sends them in `Origin`, and it must be this server. JSON bodies must be sent as
  application/json, which browsers never send cross-site without asking first (CORS preflight,
  which this server does not grant).

Every error is a one-line JSON object `{"error": "..."}` with the HTTP status.
"""

from __future__ import annotations

import hmac
import logging
from typing import Awaitable, Callable

from aiohttp import web

from shared.security import is_loopback_host

logger = logging.getLogger(__name__)

TOKEN_COOKIE = "holocam_token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _supplied_token(request: web.Request) -> tuple[str | None, bool]:
    """(token, came_in_query)."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    if "token" in request.query:
        return request.query["token"], True
    return request.cookies.get(TOKEN_COOKIE), False


def make_guard(token: str, *, check_host: bool = True) -> Callable:
    """The aiohttp middleware enforcing the rules in the module docstring.

    Args:
        token: the secret every request must carry; "" only with --no-http-auth.
        check_host: refuse Host names that are not this machine (for a loopback listener).
    """
    secret = token.encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if (check_host or not secret) and not is_loopback_host(request.url.host, from_browser=True):
                sockname = request.transport.get_extra_info("sockname") if request.transport else None
                port = sockname[1] if sockname else request.url.port
                return json_error(403, f"host {request.host!r} is not this machine: open "
                                       f"http://127.0.0.1:{port}/")
            if secret:
                supplied, in_query = _supplied_token(request)
                if supplied is None or not hmac.compare_digest(supplied.encode(), secret):
                    return json_error(401, "this holocam needs its token: open the URL with ?token= that the "
                                           "sink's log shows (or send 'Authorization: Bearer TOKEN')")
                if in_query and request.method == "GET" and request.path == "/":
                    # Keep the token in a cookie and out of the address bar and the history.
                    redirect = web.HTTPSeeOther("/")
                    redirect.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
                    raise redirect
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                origin = request.headers.get("Origin")
                if origin is not None and origin != f"{request.scheme}://{request.host}":
                    return json_error(403, f"requests from {origin} are refused: use the holocam page itself, "
                                           f"or a script without an Origin header")
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
            if exc.status == 404:
                reason = f"no such page {request.path}: see GET /api for the endpoints"
            elif exc.status == 405:
                reason = f"{request.method} is not allowed on {request.path}: see GET /api"
            return json_error(exc.status, reason)
        if not response.prepared:   # a stream sets its own headers before it starts
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    return guard
