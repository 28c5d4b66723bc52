"""ZeroMQ sockets for holocam, set up in one place: the sink's ROUTER and a segmenter's DEALER.

`SinkSocket` (ROUTER) binds where replicas connect and connects to replicas that bind;
`ReplicaSocket` (DEALER) is one segmenter's link to one sink. Both have `send`/`recv`/`close`
and are context managers. Every socket option lives here: MAXMSGSIZE, LINGER, high-water marks,
handshake and ZMTP heartbeat timeouts, reconnect intervals, and CurveZMQ keys. No other module
sets socket options.

The rules the sockets enforce live beside them: who may read a link in shared.security (the
plain-text rule, applied again here so no caller can skip it), keys and the sink's allow-list in
shared.keys, the application heartbeat in shared.heartbeat.
"""

from __future__ import annotations

import errno
import logging
import math
from typing import Literal

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from .errors import TransportError
from .keys import AllowList, CurveKeys
from .protocol import MAX_REPLY_BYTES, MAX_REQUEST_BYTES
from .security import Endpoint, check_plain_text, parse_endpoint

# Importable from here for callers written against the one-module transport; each name's home
# is the module it comes from.
from .heartbeat import HEARTBEAT_INTERVAL_S, HEARTBEAT_LIVENESS  # noqa: F401
from .keys import DEFAULT_REPLICA_KEY_NAME, replica_keys, sink_keys  # noqa: F401
from .ratelog import RateLimitedLog  # noqa: F401
from .security import compose_network_from_env, endpoint_scope  # noqa: F401

# libzmq-level settings.
LINGER_MS = 0                     # never block on close; a goodbye is sent with an explicit linger
GOODBYE_LINGER_MS = 1000
HIGH_WATER_MARK = 64              # messages per peer; work is credit-bound, so this only caps floods
HANDSHAKE_TIMEOUT_MS = 2000       # a peer that never finishes its handshake is dropped
ZMTP_HEARTBEAT_IVL_MS = 1000      # libzmq pings: finds half-open TCP links (a LAN box unplugged)
ZMTP_HEARTBEAT_TIMEOUT_MS = 3000
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 2000
ZAP_DOMAIN = "holocam"
MAX_PARTS = 2                     # payload parts kept per message (1 is valid); extra parts are discarded



def poll_timeout_ms(deadline: float, now: float) -> int:
    """Whole milliseconds from `now` until `deadline` (time.monotonic() seconds), rounded up, for
    zmq.Poller.poll. pyzmq truncates a float timeout: a loop asking to wait 0.9 ms until its next
    heartbeat got 0, returned at once and spun until the deadline, every deadline (measured: 7.5
    empty polls per frame in the segmenter's loop, most of its 0.6 CPU ms per frame)."""
    return max(0, math.ceil((deadline - now) * 1000.0))

class PeerGone(Exception):
    """The ROUTER has no connection to that identity any more."""


# -- sockets ---------------------------------------------------------------------------------------

def _common_options(sock: zmq.Socket, max_message: int, endpoints: list[Endpoint]) -> None:
    sock.setsockopt(zmq.LINGER, LINGER_MS)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message)
    sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
    sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
    sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_TIMEOUT_MS)
    sock.setsockopt(zmq.HEARTBEAT_IVL, ZMTP_HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ZMTP_HEARTBEAT_TIMEOUT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TTL, ZMTP_HEARTBEAT_TIMEOUT_MS)
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
    if any(e.scheme == "tcp" and ":" in e.host for e in endpoints):
        sock.setsockopt(zmq.IPV6, 1)


def _attach(sock: zmq.Socket, endpoint: Endpoint, *, bind: bool) -> None:
    try:
        if bind:
            sock.bind(endpoint.url)
        else:
            sock.connect(endpoint.url)
    except zmq.ZMQError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TransportError(f"cannot bind {endpoint.url}: the port is in use (another sink or "
                                 f"segmenter?); stop it or choose another port") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
            raise TransportError(f"cannot bind {endpoint.url}: no such address on this machine; "
                                 f"use tcp://*:PORT or one of this machine's addresses") from None
        verb = "bind" if bind else "connect to"
        raise TransportError(f"cannot {verb} {endpoint.url} ({exc.strerror}): check the host name "
                             f"and port") from None


class _Link:
    """What both sockets share: an owned or borrowed zmq.Context, and `with` support."""

    def __init__(self, context: zmq.Context | None) -> None:
        self._own_context = context is None
        self._context = context or zmq.Context()
        self.socket: zmq.Socket | None = None

    def close(self) -> None:
        raise NotImplementedError

    def _end_context(self) -> None:
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SinkSocket(_Link):
    """The sink's ROUTER: replicas connect to its `bind` endpoints, and it connects to `connect` ones.

    Args:
        bind: endpoints where connect-mode replicas reach the sink.
        connect: endpoints of replicas that bind (e.g. tcp://gpu-box:5556).
        curve: the sink's CurveKeys (from `sink_keys`), or None for plain text.
        insecure: allow plain text beyond loopback/compose (the warning is `check_links`'s, at start).
        compose_network: treat the compose network as local (see shared.security).
        context: a zmq.Context to use; by default the socket owns one (ended by `close`).
    Use from one thread only; `socket` is there for a zmq.Poller.
    """

    def __init__(self, *, bind: list[str], connect: list[str], curve: CurveKeys | None = None,
                 insecure: bool = False, compose_network: bool = False,
                 context: zmq.Context | None = None) -> None:
        binds = [parse_endpoint(url, bind=True) for url in bind]
        connects = [parse_endpoint(url, bind=False) for url in connect]
        if not binds and not connects:
            raise TransportError("the sink has no endpoint: give --bind or --segmenter tcp://HOST:PORT")
        if curve is not None and not curve.is_server:
            raise TransportError("the sink needs its own key pair and an allow-list: "
                                 "use shared.keys.sink_keys(DIR)")
        check_plain_text(binds + connects, curve=curve, insecure=insecure, compose_network=compose_network,
                         warn=False)
        super().__init__(context)
        self.allow_list: AllowList | None = None
        self._auth: ThreadAuthenticator | None = None
        self.bound: list[str] = []       # bind endpoints as resolved (port * -> the real port)
        try:
            if curve is not None:
                # The ZAP handler must run before the first handshake, or libzmq admits anyone.
                self.allow_list = AllowList(curve.authorized_dir)
                self._auth = ThreadAuthenticator(self._context, log=logging.getLogger("zmq.auth"))
                self._auth.start()
                self._auth.configure_curve_callback(ZAP_DOMAIN, self.allow_list)
            sock = self._context.socket(zmq.ROUTER)
            self.socket = sock
            _common_options(sock, MAX_REPLY_BYTES, binds + connects)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)   # sending to a vanished replica raises, never silently drops
            if curve is not None:
                sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
                sock.setsockopt(zmq.CURVE_SERVER, 1)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
                sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
            for endpoint in binds:
                _attach(sock, endpoint, bind=True)
                self.bound.append(sock.getsockopt_string(zmq.LAST_ENDPOINT))
            for endpoint in connects:
                _attach(sock, endpoint, bind=False)
        except BaseException:
            self.close()
            raise
        self.endpoints = [e.url for e in binds + connects]

    def send(self, identity: bytes, payload: bytes) -> bool:
        """Queue a message for one replica without blocking.

        Returns:
            True if queued, False if that replica's queue is full.
        Raises:
            PeerGone: no replica with that identity is connected.
        """
        try:
            self.socket.send_multipart([identity, payload], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                raise PeerGone(identity) from None
            raise

    def recv(self) -> tuple[bytes, list[bytes]] | None:
        """The next (identity, parts) without blocking, or None when nothing is waiting.

        At most MAX_PARTS parts are kept; the rest of an over-long message is read and discarded.
        """
        try:
            identity = self.socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        parts: list[bytes] = []
        overflow = False
        while self.socket.getsockopt(zmq.RCVMORE):
            part = self.socket.recv()
            if len(parts) < MAX_PARTS:
                parts.append(part)
            else:
                overflow = True
        if overflow:
            parts.append(b"")   # marks the message as too long for the caller
        return identity, parts

    def close(self) -> None:
        """Close the socket (dropping anything unsent), stop the ZAP handler, end an owned context."""
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._end_context()


_HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)


class ReplicaSocket(_Link):
    """One segmenter's DEALER link to one sink, connecting (`tcp://SINK:5555`) or binding (`tcp://*:5556`).

    A binding replica serves one sink at a time: a DEALER shares its replies among all its peers.
    With CURVE only the holder of the sink's secret key can become that peer.

    Args:
        endpoint: where to connect or bind.
        mode: "connect" or "bind".
        curve: the segmenter's CurveKeys (from `replica_keys`), or None for plain text.
        insecure / compose_network: see `shared.security.check_plain_text`.
        context: zmq.Context to use (by default the socket owns one).
    """

    def __init__(self, endpoint: str, *, mode: Literal["connect", "bind"], curve: CurveKeys | None = None,
                 insecure: bool = False, compose_network: bool = False,
                 context: zmq.Context | None = None) -> None:
        if mode not in ("connect", "bind"):
            raise ValueError(f"mode must be 'connect' or 'bind', got {mode!r}")
        parsed = parse_endpoint(endpoint, bind=mode == "bind")
        if curve is not None and curve.server_key is None:
            raise TransportError("a segmenter needs the sink's public key: use shared.keys.replica_keys(DIR)")
        check_plain_text([parsed], curve=curve, insecure=insecure, compose_network=compose_network, warn=False)
        super().__init__(context)
        self.endpoint = endpoint
        self.mode = mode
        self.curve = curve
        self.monitor: zmq.Socket | None = None
        try:
            sock = self._context.socket(zmq.DEALER)
            self.socket = sock
            _common_options(sock, MAX_REQUEST_BYTES, [parsed])
            if curve is not None:
                sock.setsockopt(zmq.CURVE_SERVERKEY, curve.server_key)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
                sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
            self.monitor = sock.get_monitor_socket(_HANDSHAKE_EVENTS)
            _attach(sock, parsed, bind=mode == "bind")
        except BaseException:
            self.close()
            raise

    def send(self, payload: bytes) -> bool:
        """Queue one message without blocking; False if there is no sink to take it yet."""
        try:
            self.socket.send(payload, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def recv(self) -> list[bytes] | None:
        """The next message's parts without blocking (at most MAX_PARTS kept), or None."""
        try:
            first = self.socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        parts = [first]
        while self.socket.getsockopt(zmq.RCVMORE):
            part = self.socket.recv()
            if len(parts) < MAX_PARTS:
                parts.append(part)
        return parts

    def problems(self) -> list[str]:
        """Handshake failures since the last call, each as one line that names the fix."""
        lines = []
        while self.monitor is not None:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            kind = event["event"]
            peer = event.get("endpoint", b"")
            peer = peer.decode("utf-8", "replace") if isinstance(peer, bytes) else str(peer)
            if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                lines.append(f"the sink at {peer or self.endpoint} refused our key: copy this segmenter's "
                             f"public key (NAME.key from `make keys`) into the sink's authorized/ folder")
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                lines.append(f"handshake with {peer or self.endpoint} failed: one side uses keys and the "
                             f"other does not; give both --curve-dir (or neither, on loopback)")
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                # libzmq reports a keyed sink meeting a plain segmenter as either this or the
                # protocol failure above, depending on timing: say the same thing for both.
                hint = ("check that sink.key in --curve-dir is the sink's current public key"
                        if self.curve is not None else
                        "most likely one side uses keys and the other does not: if the sink uses keys, "
                        "give this segmenter --curve-dir too")
                lines.append(f"handshake with {peer or self.endpoint} failed: {hint}")
        return lines

    def close(self, linger_ms: int = 0) -> None:
        """Close the link; `linger_ms` > 0 gives queued messages (a goodbye) time to leave."""
        if self.socket is not None:
            if self.monitor is not None:
                try:
                    self.socket.disable_monitor()
                except zmq.ZMQError:
                    pass
                self.monitor.close(linger=0)
                self.monitor = None
            self.socket.close(linger=linger_ms)
            self.socket = None
        self._end_context()
