"""ZeroMQ sockets for holocam, set up in one place: the sink's ROUTER and a segmenter's DEALER.

`SinkSocket` (ROUTER) binds where replicas connect and connects to replicas that bind;
`ReplicaSocket` (DEALER) is one segmenter's link to one sink. Both have `send`/`recv`/`close`
and are context managers. Every socket option lives here: MAXMSGSIZE, LINGER, high-water marks,
handshake and ZMTP heartbeat timeouts, reconnect intervals, and CurveZMQ keys. No other module
sets socket options.

Security rules (webcam frames are private):
- With keys (`CurveKeys`), every link is CurveZMQ-encrypted. **The sink is always the CURVE
  server and segmenters are always CURVE clients**, whichever side binds: the sink's ZAP handler
  admits only client keys found in its allow-list folder, and a segmenter pins the sink's public
  key. Frames only ever flow from the sink, so a party without an allowed key never receives one:
  a connecting stranger fails the handshake, and a stranger that binds where the sink connects
  (a spoofed `gpu-box`) cannot pass the sink's allow-list either.
- Without keys, plain TCP is accepted only where nobody else can listen: loopback
  (127.0.0.0/8, ::1, localhost), ipc:// and inproc://, and the compose network. The compose
  network is recognised only when the compose file says so, with HOLOCAM_COMPOSE_NETWORK=1 in
  the service's environment (`compose_network_from_env`); then wildcard binds (`tcp://*:5555`
  inside the container), single-label service names (`tcp://capture_sink:5555`) and private
  addresses count as local. Anything else needs `insecure=True` (--insecure) and logs a warning.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

import zmq
import zmq.auth
from zmq.utils import z85
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from .protocol import MAX_REPLY_BYTES, MAX_REQUEST_BYTES

logger = logging.getLogger(__name__)

# Application heartbeats (holocam messages, both ways), Paranoid Pirate style.
HEARTBEAT_INTERVAL_S = 0.2
HEARTBEAT_LIVENESS = 4            # missed intervals before a peer counts as dead
HEARTBEAT_EXPIRY_S = HEARTBEAT_INTERVAL_S * HEARTBEAT_LIVENESS   # 0.8 s: "dropped within 1 s"

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

COMPOSE_ENV = "HOLOCAM_COMPOSE_NETWORK"
SINK_KEY_NAME = "sink"
DEFAULT_REPLICA_KEY_NAME = "segmenter"
AUTHORIZED_DIR = "authorized"

Scope = Literal["local", "compose", "network"]


class TransportError(RuntimeError):
    """A transport problem the user can fix; the message is one line that names the fix."""


class PeerGone(Exception):
    """The ROUTER has no connection to that identity any more."""


# -- rate-limited logging -----------------------------------------------------------------------

class RateLimitedLog:
    """Logs a repeated warning at most once per `interval_s` per key, with a count of the rest."""

    def __init__(self, log: logging.Logger, interval_s: float = 5.0) -> None:
        self._log = log
        self._interval_s = interval_s
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        self._emit(logging.WARNING, key, message, *args)

    def error(self, key: str, message: str, *args: object) -> None:
        self._emit(logging.ERROR, key, message, *args)

    def _emit(self, level: int, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        if len(self._next) > 1000:   # keys can come from peers: never let this grow unbounded
            self._next.clear()
            self._suppressed.clear()
        skipped = self._suppressed.pop(key, 0)
        self._next[key] = now + self._interval_s
        if skipped:
            message += f" (+{skipped} more like this)"
        self._log.log(level, message, *args)


# -- endpoints and the plain-text rule -----------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    url: str
    scheme: str       # tcp | ipc | inproc
    host: str         # "" for ipc/inproc
    port: str


_TCP = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[^:/\[\];]+):(\d{1,5}|\*)$")


def parse_endpoint(url: str, *, bind: bool) -> Endpoint:
    """Check an endpoint's syntax; raises TransportError naming the expected form."""
    role = "--bind" if bind else "--connect/--segmenter"
    if not isinstance(url, str) or not url:
        raise TransportError(f"empty {role} endpoint: use tcp://HOST:PORT")
    if url.startswith(("ipc://", "inproc://")):
        scheme, rest = url.split("://", 1)
        if not rest:
            raise TransportError(f"{role} {url!r} has no name: use e.g. {scheme}:///tmp/holocam.sock")
        return Endpoint(url, scheme, "", "")
    match = _TCP.match(url)
    if not match:
        raise TransportError(f"{role} {url!r} is not an endpoint: use tcp://HOST:PORT "
                             f"(e.g. tcp://127.0.0.1:5555{', tcp://*:5556' if bind else ''})")
    host, port = match.group(1), match.group(2)
    if port == "*" and not bind:
        raise TransportError(f"{role} {url!r}: a connect endpoint needs a port number")
    if port != "*" and not 1 <= int(port) <= 65535:
        raise TransportError(f"{role} {url!r}: port must be 1..65535")
    if host == "*" and not bind:
        raise TransportError(f"{role} {url!r}: '*' only makes sense for --bind; give the host to connect to")
    return Endpoint(url, "tcp", host.strip("[]"), port)


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "lo"}
_WILDCARDS = {"*", "0.0.0.0", "::"}


def endpoint_scope(endpoint: Endpoint, *, compose_network: bool = False) -> Scope:
    """Who could read plain text on this link: only this machine, the compose network, or anyone."""
    if endpoint.scheme in ("ipc", "inproc"):
        return "local"
    host = endpoint.host.lower()
    if host in _LOOPBACK_NAMES:
        return "local"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        return "local"
    if compose_network:
        if host in _WILDCARDS or (address is None and "." not in host):
            return "compose"
        if address is not None and address.is_private:
            return "compose"
    return "network"


def compose_network_from_env(environ: Mapping[str, str] = os.environ) -> bool:
    """True when the compose file marks this service as running on its private network."""
    return environ.get(COMPOSE_ENV, "").strip().lower() in ("1", "true", "yes")


def check_plain_text(endpoints: list[Endpoint], *, curve: "CurveKeys | None", insecure: bool,
                     compose_network: bool) -> None:
    """Enforce the plain-text rule for a socket's endpoints (see the module docstring)."""
    if curve is not None:
        return
    exposed = [e.url for e in endpoints if endpoint_scope(e, compose_network=compose_network) == "network"]
    if not exposed:
        return
    if not insecure:
        raise TransportError(
            f"{', '.join(exposed)} leaves this machine, so webcam frames must be encrypted: run "
            f"`python -m shared.keys keys/` (make keys) and pass --curve-dir keys/ to the sink and the "
            f"segmenters, or pass --insecure to send plain text anyway")
    logger.warning("W: PLAIN TEXT on %s (--insecure): anyone on the network path can watch these webcam "
                   "frames; use --curve-dir with keys from `make keys` instead", ", ".join(exposed))


# -- CurveZMQ keys ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CurveKeys:
    """One side's CurveZMQ key material (z85-encoded keys).

    A sink has `authorized_dir` (the allow-list: segmenters' public key files); a segmenter has
    `server_key` (the sink's public key, pinned).
    """
    public: bytes
    secret: bytes
    server_key: bytes | None = None
    authorized_dir: Path | None = None

    @property
    def is_server(self) -> bool:
        return self.authorized_dir is not None


def _load_key_file(path: Path, *, need_secret: bool, what: str, fix: str) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        reason = "is missing" if not path.exists() else f"is not a key file ({exc})"
        raise TransportError(f"{what} {path} {reason}: {fix}") from None
    if need_secret and not secret:
        raise TransportError(f"{what} {path} has no secret key: pass the .key_secret file, {fix}")
    for key in (public, secret):
        if key is not None and not _is_z85_key(key):
            raise TransportError(f"{what} {path} holds a malformed key: {fix}")
    return public, secret


def _is_z85_key(key: bytes) -> bool:
    try:
        return len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def sink_keys(curve_dir: str | os.PathLike, *, secret_file: str | os.PathLike | None = None,
              authorized_dir: str | os.PathLike | None = None) -> CurveKeys:
    """The sink's keys from a folder made by `python -m shared.keys DIR`.

    Args:
        curve_dir: the keys folder; uses DIR/sink.key_secret and DIR/authorized/.
        secret_file: another sink key pair file instead of DIR/sink.key_secret.
        authorized_dir: another allow-list folder instead of DIR/authorized/.
    Returns:
        CurveKeys for `SinkSocket` / `Dispatcher(curve=...)`.
    """
    base = Path(curve_dir).expanduser()
    fix = f"run `python -m shared.keys {base}` (make keys) or pass the right --curve-dir"
    secret_path = Path(secret_file) if secret_file else base / f"{SINK_KEY_NAME}.key_secret"
    public, secret = _load_key_file(secret_path, need_secret=True, what="the sink key pair", fix=fix)
    allowed = Path(authorized_dir) if authorized_dir else base / AUTHORIZED_DIR
    if not allowed.is_dir() or not any(allowed.glob("*.key")):
        raise TransportError(f"the allow-list folder {allowed} has no segmenter public keys (*.key): {fix}, "
                             f"or copy a segmenter's NAME.key into it")
    return CurveKeys(public=public, secret=secret, authorized_dir=allowed)


def replica_keys(curve_dir: str | os.PathLike, *, name: str = DEFAULT_REPLICA_KEY_NAME,
                 secret_file: str | os.PathLike | None = None,
                 sink_key_file: str | os.PathLike | None = None) -> CurveKeys:
    """A segmenter's keys: its own pair (DIR/NAME.key_secret) and the sink's public key (DIR/sink.key)."""
    base = Path(curve_dir).expanduser()
    fix = f"run `python -m shared.keys {base}` (make keys) or pass the right --curve-dir"
    secret_path = Path(secret_file) if secret_file else base / f"{name}.key_secret"
    public, secret = _load_key_file(secret_path, need_secret=True, what="the segmenter key pair", fix=fix)
    sink_path = Path(sink_key_file) if sink_key_file else base / f"{SINK_KEY_NAME}.key"
    server_key, _ = _load_key_file(sink_path, need_secret=False, what="the sink's public key",
                                   fix=f"copy sink.key from the sink's keys folder ({fix})")
    return CurveKeys(public=public, secret=secret, server_key=server_key)


class AllowList:
    """ZAP credentials provider: admits client keys whose NAME.key is in the allow-list folder.

    The folder is re-read when it changes, so adding a segmenter needs no sink restart.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stamp: tuple | None = None
        self._keys: frozenset[bytes] = frozenset()
        self._lock = threading.Lock()
        self._warn = RateLimitedLog(logger, 10.0)
        self.refused = 0

    def _reload(self) -> None:
        try:
            files = sorted(self.folder.glob("*.key"))
            stamp = tuple((f.name, f.stat().st_mtime_ns) for f in files)
        except OSError:
            files, stamp = [], None
        if stamp == self._stamp:
            return
        keys = set()
        for path in files:
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError):
                self._warn.warning(f"bad:{path}", "W: ignoring %s in the allow-list: not a public key file", path)
                continue
            if _is_z85_key(public):
                keys.add(public)
        self._keys, self._stamp = frozenset(keys), stamp

    def callback(self, domain: str, key: bytes) -> bool:
        with self._lock:
            self._reload()
            allowed = key in self._keys
        if not allowed:
            self.refused += 1
            self._warn.warning(f"refused:{key!r}", "W: refused a segmenter with unknown key %s: to admit it, "
                               "copy its NAME.key into %s", key.decode("ascii", "replace"), self.folder)
        return allowed


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


class SinkSocket:
    """The sink's ROUTER: replicas connect to its `bind` endpoints, and it connects to `connect` ones.

    Args:
        bind: endpoints where connect-mode replicas reach the sink.
        connect: endpoints of replicas that bind (e.g. tcp://gpu-box:5556).
        curve: the sink's CurveKeys (from `sink_keys`), or None for plain text.
        insecure: allow plain text beyond loopback/compose (logs a warning).
        compose_network: treat the compose network as local (see module docstring).
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
                                 "use shared.transport.sink_keys(DIR)")
        check_plain_text(binds + connects, curve=curve, insecure=insecure, compose_network=compose_network)
        self._own_context = context is None
        self._context = context or zmq.Context()
        self.allow_list: AllowList | None = None
        self._auth: ThreadAuthenticator | None = None
        self.socket: zmq.Socket | None = None
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
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self) -> "SinkSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)


class ReplicaSocket:
    """One segmenter's DEALER link to one sink, connecting (`tcp://SINK:5555`) or binding (`tcp://*:5556`).

    A binding replica serves one sink at a time: a DEALER shares its replies among all its peers.
    With CURVE only the holder of the sink's secret key can become that peer.

    Args:
        endpoint: where to connect or bind.
        mode: "connect" or "bind".
        curve: the segmenter's CurveKeys (from `replica_keys`), or None for plain text.
        insecure / compose_network: see `check_plain_text`.
        context: zmq.Context to use (by default the socket owns one).
    """

    def __init__(self, endpoint: str, *, mode: Literal["connect", "bind"], curve: CurveKeys | None = None,
                 insecure: bool = False, compose_network: bool = False,
                 context: zmq.Context | None = None) -> None:
        if mode not in ("connect", "bind"):
            raise ValueError(f"mode must be 'connect' or 'bind', got {mode!r}")
        parsed = parse_endpoint(endpoint, bind=mode == "bind")
        if curve is not None and curve.server_key is None:
            raise TransportError("a segmenter needs the sink's public key: use shared.transport.replica_keys(DIR)")
        check_plain_text([parsed], curve=curve, insecure=insecure, compose_network=compose_network)
        self.endpoint = endpoint
        self.mode = mode
        self.curve = curve
        self._own_context = context is None
        self._context = context or zmq.Context()
        self.socket: zmq.Socket | None = None
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
                hint = ("check that sink.key in --curve-dir is the sink's current public key"
                        if self.curve is not None else
                        "if the sink uses keys, give this segmenter --curve-dir too")
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
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self) -> "ReplicaSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
