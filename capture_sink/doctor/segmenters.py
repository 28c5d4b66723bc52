"""Checks 4-5: the model's weights are in the cache, and segmenters answer (each --segmenter endpoint
says hello; on the --bind endpoints, a replica connects)."""

from __future__ import annotations

import time

from capture_sink.config import SinkConfig
from shared.geometry import InputSpec

from .findings import FAIL, INFO, OK, WARN, Finding

# -- 4. weights ------------------------------------------------------------------------------------

def check_weights(*, local_segmenter: bool) -> list[Finding]:
    """The default model's weights are in the cache (where a segmenter package is installed)."""
    try:
        from segmenter.model import DEFAULT_MODEL
        from segmenter.weights import WeightsError, model_weights
    except ImportError:
        if local_segmenter:
            return [Finding("weights", FAIL, "--with-segmenter, but the segmenter package is not installed here",
                            "pip install 'holocam[segmenter]' (torch first: pip install torch==2.13.0), "
                            "or run segmenters elsewhere and drop --with-segmenter")]
        return [Finding("weights", INFO, "no segmenter package here (the sink image has none): the segmenters "
                                         "check their own weights (`python -m segmenter weights`)")]
    try:
        paths = model_weights(DEFAULT_MODEL)
    except WeightsError as exc:
        message, _, fix = str(exc).partition(": ")
        return [Finding("weights", FAIL if local_segmenter else WARN, message, fix)]
    return [Finding("weights", OK, f"{DEFAULT_MODEL}: {', '.join(map(str, paths))}")]


# -- 5. segmenters ---------------------------------------------------------------------------------

def _first_answer(sock, timeout_s: float):
    """The first protocol message any replica sends on `sock` within `timeout_s`, or None."""
    from shared import protocol
    from shared.transport import poll_timeout_ms

    deadline = time.monotonic() + timeout_s
    poller_socket = sock.socket
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if not poller_socket.poll(poll_timeout_ms(deadline, time.monotonic())):
            continue
        got = sock.recv()
        if got is None:
            continue
        _, parts = got
        try:
            return protocol.decode(parts[0]) if parts else None
        except protocol.ProtocolError as exc:
            return exc


def _describe(message) -> str:
    from shared.protocol import Heartbeat, Hello

    if isinstance(message, Hello):
        grid = InputSpec(message.width, message.height, message.resize).describe()
        return f"{message.model} {grid} from replica {message.replica_id}"
    if isinstance(message, Heartbeat):
        return "a replica busy with another sink answered (heartbeat)"
    return type(message).__name__


def check_segmenters(config: SinkConfig, *, timeout_s: float) -> list[Finding]:
    """Each --segmenter endpoint says hello; replicas connect to the --bind endpoints."""
    from shared.protocol import ProtocolError
    from shared.errors import TransportError
    from shared.keys import sink_keys
    from shared.transport import SinkSocket

    compose = config.compose_network
    findings = []
    try:
        curve = sink_keys(config.curve_dir) if config.curve_dir else None
    except TransportError as exc:
        return [Finding("segmenter", FAIL, f"CurveZMQ keys: {exc}")]
    for endpoint in config.segmenters:
        try:
            with SinkSocket(bind=[], connect=[endpoint], curve=curve, insecure=config.insecure,
                            compose_network=compose) as sock:
                answer = _first_answer(sock, timeout_s)
        except TransportError as exc:
            findings.append(Finding("segmenter", FAIL, f"{endpoint}: {exc}"))
            continue
        if answer is None:
            findings.append(Finding("segmenter", FAIL, f"no answer from {endpoint} within {timeout_s:g} s",
                                    f"start `python -m segmenter serve --bind tcp://*:{endpoint.rsplit(':', 1)[-1]}` "
                                    f"there; check the host, port and firewall; with keys give both sides --curve-dir"))
        elif isinstance(answer, ProtocolError):
            findings.append(Finding("segmenter", FAIL, f"{endpoint} answered off-protocol ({answer})",
                                    "run the same holocam version on the sink and the segmenters"))
        else:
            findings.append(Finding("segmenter", OK, f"{endpoint}: {_describe(answer)}"))
    if config.with_segmenter or not config.bind:
        return findings
    try:
        with SinkSocket(bind=config.bind, connect=[], curve=curve, insecure=config.insecure,
                        compose_network=compose) as sock:
            answer = _first_answer(sock, timeout_s)
    except TransportError as exc:
        if "in use" in str(exc):
            findings.append(Finding("segmenter", INFO, f"{', '.join(config.bind)} is taken: a sink is running "
                                                       f"already (its log shows its replicas)"))
        else:
            findings.append(Finding("segmenter", FAIL, str(exc)))
        return findings
    if answer is None or isinstance(answer, ProtocolError):
        findings.append(Finding(
            "segmenter", WARN if config.segmenters else FAIL,
            f"no segmenter connected to {', '.join(config.bind)} within {timeout_s:g} s",
            f"start one: python -m segmenter serve --connect {config.bind[0].replace('*', '127.0.0.1')}, "
            f"or run the sink with --with-segmenter"))
    else:
        findings.append(Finding("segmenter", OK, f"{', '.join(config.bind)}: {_describe(answer)}"))
    return findings
