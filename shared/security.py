"""Who may read holocam's links: endpoint syntax, the loopback test and the plain-text rule.

Webcam frames are private. With keys (`shared.keys.CurveKeys`) every link is CurveZMQ-encrypted
and the rules below do not apply. **The sink is always the CURVE server and segmenters are always
CURVE clients**, whichever side binds: the sink's ZAP handler admits only client keys found in
its allow-list folder (`shared.keys.AllowList`), and a segmenter pins the sink's public key.
Frames only ever flow from the sink, so a party without an allowed key never receives one: a
connecting stranger fails the handshake, and a stranger that binds where the sink connects (a
spoofed `gpu-box`) cannot pass the sink's allow-list either.

Without keys, plain TCP is accepted only where nobody else can listen: loopback (127.0.0.0/8,
::1, localhost), ipc:// and inproc://, and the compose network. The compose network is
recognised only when the compose file says so, with HOLOCAM_COMPOSE_NETWORK=1 in the service's
environment (`compose_network_from_env`); then wildcard binds (`tcp://*:5555` inside the
container), single-label service names (`tcp://capture_sink:5555`) and private addresses count
as local. Anything else needs `insecure=True` (--insecure) and logs a warning.

`check_links` applies the rule to a service's endpoints once, at start, and says the warning;
the sockets (shared.transport) apply it again without a word, so no caller can skip it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Literal, Mapping

from .errors import TransportError

if TYPE_CHECKING:
    from .keys import CurveKeys

logger = logging.getLogger(__name__)

COMPOSE_ENV = "HOLOCAM_COMPOSE_NETWORK"

Scope = Literal["local", "compose", "network"]


# -- endpoints -------------------------------------------------------------------------------------

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


# -- this machine --------------------------------------------------------------------------------

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LOOPBACK_INTERFACE = "lo"        # libzmq binds tcp://lo:PORT to the loopback interface by name
_WILDCARDS = {"*", "0.0.0.0", "::"}


def is_loopback_host(host: str | None, *, from_browser: bool = False) -> bool:
    """Whether a host name or address (IPv6 with or without brackets) can only mean this machine.

    Args:
        host: a name ("localhost"), an address ("127.0.0.2", "[::1]"), or None.
        from_browser: the name is one a browser resolved (a Host header). Browsers send every
            *.localhost name to loopback themselves; the system resolver may ask DNS for one,
            so such names count only here.
    """
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or (from_browser and host.endswith(".localhost")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_scope(endpoint: Endpoint, *, compose_network: bool = False) -> Scope:
    """Who could read plain text on this link: only this machine, the compose network, or anyone."""
    if endpoint.scheme in ("ipc", "inproc"):
        return "local"
    host = endpoint.host.lower()
    if host == _LOOPBACK_INTERFACE or is_loopback_host(host):
        return "local"
    if compose_network:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if host in _WILDCARDS or (address is None and "." not in host):
            return "compose"
        if address is not None and address.is_private:
            return "compose"
    return "network"


def compose_network_from_env(environ: Mapping[str, str] = os.environ) -> bool:
    """True when the compose file marks this service as running on its private network."""
    return environ.get(COMPOSE_ENV, "").strip().lower() in ("1", "true", "yes")


# -- the plain-text rule ---------------------------------------------------------------------------

def check_plain_text(endpoints: list[Endpoint], *, curve: "CurveKeys | None", insecure: bool,
                     compose_network: bool, warn: bool = True) -> None:
    """Enforce the plain-text rule for a socket's endpoints (see the module docstring).

    Args:
        warn: log the plain-text warning when `insecure` lets an exposed link through; the
            sockets pass False, because `check_links` has said it once at start.
    """
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
    if warn:
        logger.warning("W: PLAIN TEXT on %s (--insecure): anyone on the network path can watch these webcam "
                       "frames; use --curve-dir with keys from `make keys` instead", ", ".join(exposed))


def check_links(*, connect: Iterable[str] = (), bind: Iterable[str] = (), curve: "CurveKeys | None",
                insecure: bool, compose_network: bool) -> list[Endpoint]:
    """A service's endpoints checked once, at start: syntax, then the plain-text rule (with its warning).

    Returns:
        The parsed endpoints, `connect` ones first.
    Raises:
        TransportError: a malformed endpoint, or plain text off this machine without `insecure`.
    """
    endpoints = [parse_endpoint(url, bind=False) for url in connect] + \
                [parse_endpoint(url, bind=True) for url in bind]
    check_plain_text(endpoints, curve=curve, insecure=insecure, compose_network=compose_network)
    return endpoints
