"""shared.transport + shared.keys + shared.security: CurveZMQ with an allow-list, and the plain-text rule.

Real sockets on loopback. "Zero frames" is checked the strong way: the stranger keeps saying a
valid hello while the sink has frames to give, and must receive nothing at all.
"""

from __future__ import annotations

import contextlib
import stat
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import zmq

from capture_sink.dispatch import Dispatcher
from segmenter.model.base import InputSpec, SegmentationModel
from segmenter.worker import Worker
from shared import protocol
from shared.errors import TransportError
from shared.keys import CurveKeys, make_keys, replica_keys, sink_keys
from shared.keys import main as keys_main
from shared.protocol import Hello
from shared.security import check_plain_text, compose_network_from_env, endpoint_scope, parse_endpoint
from shared.transport import ReplicaSocket, SinkSocket

W, H = 32, 24
FRAME = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


class RedChannel(SegmentationModel):
    KEY = "red"
    input_spec = InputSpec(W, H, "stretch")

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(rgb[..., 0])


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    make_keys(tmp_path / "keys", ["gpu-box"])
    make_keys(tmp_path / "other")          # a stranger's keys: same names, different pairs
    return tmp_path


def stranger_keys(keys: Path) -> CurveKeys:
    """A key pair the sink has never seen, that does know (and pin) the real sink's public key."""
    other = replica_keys(keys / "other")
    return CurveKeys(public=other.public, secret=other.secret, server_key=replica_keys(keys / "keys").server_key)


def wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@contextlib.contextmanager
def serving(model: SegmentationModel, **kwargs) -> Iterator[Worker]:
    worker = Worker(model, **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(10)


def frames_received(sock: ReplicaSocket, d: Dispatcher, seconds: float = 1.0) -> int:
    """Keep a valid hello going and frames offered; count requests that reach `sock`."""
    hello = protocol.encode(Hello("red", W, H, "stretch", 4, "stranger", 50))
    got, seq = 0, 1000
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.send(hello)
        seq += 1
        d.submit(FRAME, seq, 0.0)
        while sock.socket.poll(20):
            parts = sock.recv()
            with contextlib.suppress(protocol.ProtocolError):
                if isinstance(protocol.decode(parts[0]), protocol.SegmentRequest):
                    got += 1
    return got


# -- key files ------------------------------------------------------------------------------------

def test_keys_command_makes_the_documented_layout(tmp_path, capsys):
    assert keys_main([str(tmp_path / "k"), "--segmenter", "gpu-box"]) == 0
    k = tmp_path / "k"
    for name in ("sink", "segmenter", "gpu-box"):
        assert (k / f"{name}.key").is_file() and (k / f"{name}.key_secret").is_file()
        assert stat.S_IMODE((k / f"{name}.key_secret").stat().st_mode) == 0o600
    assert sorted(p.name for p in (k / "authorized").iterdir()) == ["gpu-box.key", "segmenter.key"]
    assert b"secret-key" not in (k / "authorized" / "segmenter.key").read_bytes()
    before = (k / "sink.key_secret").read_bytes()
    assert keys_main([str(k)]) == 0                       # run again: nothing is overwritten
    assert (k / "sink.key_secret").read_bytes() == before
    assert "nothing changed" in capsys.readouterr().out


def test_keys_command_refuses_a_half_pair_and_bad_names(tmp_path, capsys):
    make_keys(tmp_path)
    (tmp_path / "segmenter.key_secret").unlink()
    assert keys_main([str(tmp_path)]) == 2
    assert "half of the 'segmenter' key pair" in capsys.readouterr().err
    assert keys_main([str(tmp_path / "x"), "--segmenter", "../evil"]) == 2


def test_missing_or_bad_key_files_name_the_fix(keys):
    with pytest.raises(TransportError, match="make keys"):
        sink_keys(keys / "nowhere")
    with pytest.raises(TransportError, match="make keys"):
        replica_keys(keys / "keys", name="nobody")
    (keys / "keys" / "sink.key").write_text("public-key = \"tooshort\"\n")
    with pytest.raises(TransportError, match="malformed"):
        replica_keys(keys / "keys")
    for p in (keys / "keys" / "authorized").iterdir():
        p.unlink()
    with pytest.raises(TransportError, match="no segmenter public keys"):
        sink_keys(keys / "keys")


# -- CURVE, replicas connecting -------------------------------------------------------------------

def test_right_key_gets_masks_over_curve(keys):
    with Dispatcher(bind=["tcp://127.0.0.1:*"], curve=sink_keys(keys / "keys")) as d:
        d.start()
        with serving(RedChannel(), connect=[d.bound_endpoint], curve=replica_keys(keys / "keys")):
            assert wait_until(lambda: d.stats()["replicas"] == 1)
            d.submit(FRAME, 1, 0.0)
            assert np.array_equal(d.wait_for(1, 5.0).mask, FRAME[..., 0])


def test_unknown_key_and_plain_client_get_zero_frames(keys):
    with Dispatcher(bind=["tcp://127.0.0.1:*"], curve=sink_keys(keys / "keys")) as d:
        d.start()
        # a legitimate replica is present, so the sink really has frames to hand out
        with serving(RedChannel(), connect=[d.bound_endpoint], curve=replica_keys(keys / "keys")):
            assert wait_until(lambda: d.stats()["replicas"] == 1)
            with ReplicaSocket(d.bound_endpoint, mode="connect", curve=stranger_keys(keys)) as stranger, \
                    ReplicaSocket(d.bound_endpoint, mode="connect") as plain:
                assert frames_received(stranger, d) == 0
                assert frames_received(plain, d) == 0
                problems = stranger.problems() + plain.problems()
            assert any("refused our key" in p for p in problems)
            assert any("one side uses keys" in p for p in problems)
            assert d.stats()["replicas"] == 1 and d.stats()["masks_applied"] > 0


def test_revoked_key_is_refused_and_added_key_admitted_without_restart(keys):
    folder = keys / "keys"
    gpu_box = replica_keys(folder, name="gpu-box")
    (folder / "authorized" / "gpu-box.key").unlink()                  # revoke gpu-box
    with Dispatcher(bind=["tcp://127.0.0.1:*"], curve=sink_keys(folder)) as d:
        d.start()
        with serving(RedChannel(), connect=[d.bound_endpoint], curve=gpu_box, replica_id="gpu-box"):
            assert not wait_until(lambda: d.stats()["replicas"] == 1, timeout_s=1.0)
            (folder / "authorized" / "gpu-box.key").write_bytes((folder / "gpu-box.key").read_bytes())
            assert wait_until(lambda: d.stats()["replicas"] == 1, timeout_s=8.0)   # next reconnect passes


# -- CURVE, replicas binding (the sink connects) -----------------------------------------------------

def test_binding_replica_with_right_keys_serves_the_connecting_sink(keys):
    with serving(RedChannel(), bind=["tcp://127.0.0.1:*"], curve=replica_keys(keys / "keys")) as worker:
        assert wait_until(lambda: worker.links[0].sock is not None)
        endpoint = worker.links[0].sock.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        with Dispatcher(bind=[], connect=[endpoint], curve=sink_keys(keys / "keys")) as d:
            d.start()
            assert wait_until(lambda: d.stats()["replicas"] == 1)
            d.submit(FRAME, 1, 0.0)
            assert np.array_equal(d.wait_for(1, 5.0).mask, FRAME[..., 0])


def test_stranger_binding_where_the_sink_connects_gets_zero_frames(keys):
    # A spoofed gpu-box: it binds the address the sink connects to, with keys the sink does not know.
    with ReplicaSocket("tcp://127.0.0.1:*", mode="bind", curve=stranger_keys(keys)) as stranger:
        endpoint = stranger.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        with Dispatcher(bind=["tcp://127.0.0.1:*"], connect=[endpoint], curve=sink_keys(keys / "keys")) as d:
            d.start()
            with serving(RedChannel(), connect=[d.bound_endpoint], curve=replica_keys(keys / "keys")):
                assert wait_until(lambda: d.stats()["replicas"] == 1)
                assert frames_received(stranger, d) == 0
                assert d.stats()["replicas"] == 1


def test_stranger_sink_cannot_use_a_binding_replica(keys):
    # Someone connects to gpu-box pretending to be the sink, with another sink key pair.
    with serving(RedChannel(), bind=["tcp://127.0.0.1:*"], curve=replica_keys(keys / "keys")) as worker:
        assert wait_until(lambda: worker.links[0].sock is not None)
        endpoint = worker.links[0].sock.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        with SinkSocket(bind=[], connect=[endpoint], curve=sink_keys(keys / "other")) as fake_sink:
            assert not fake_sink.socket.poll(1000), "the replica talked to a sink it does not trust"


# -- the plain-text rule --------------------------------------------------------------------------

@pytest.mark.parametrize("url, compose, scope", [
    ("tcp://127.0.0.1:5555", False, "local"),
    ("tcp://127.8.9.10:5555", False, "local"),
    ("tcp://localhost:5555", False, "local"),
    ("tcp://[::1]:5555", False, "local"),
    ("ipc:///tmp/holocam.sock", False, "local"),
    ("inproc://x", False, "local"),
    ("tcp://*:5555", False, "network"),
    ("tcp://0.0.0.0:5555", False, "network"),
    ("tcp://192.168.1.5:5555", False, "network"),
    ("tcp://segmenter:5556", False, "network"),
    ("tcp://*:5555", True, "compose"),
    ("tcp://capture_sink:5555", True, "compose"),
    ("tcp://172.18.0.3:5555", True, "compose"),
    ("tcp://gpu.example.org:5556", True, "network"),
    ("tcp://8.8.8.8:5556", True, "network"),
])
def test_endpoint_scope(url, compose, scope):
    bind = url.startswith("tcp://*") or url.startswith("tcp://0.0.0.0")
    assert endpoint_scope(parse_endpoint(url, bind=bind), compose_network=compose) == scope


def test_compose_network_comes_only_from_the_compose_file_variable():
    assert compose_network_from_env({"HOLOCAM_COMPOSE_NETWORK": "1"})
    assert not compose_network_from_env({})
    assert not compose_network_from_env({"HOLOCAM_COMPOSE_NETWORK": "0"})


def test_plain_text_off_the_machine_needs_insecure(caplog):
    lan = [parse_endpoint("tcp://192.168.1.5:5556", bind=False)]
    with pytest.raises(TransportError, match="make keys.*--insecure"):
        check_plain_text(lan, curve=None, insecure=False, compose_network=False)
    with caplog.at_level("WARNING"):
        check_plain_text(lan, curve=None, insecure=True, compose_network=False)
    assert "PLAIN TEXT on tcp://192.168.1.5:5556" in caplog.text


def test_segmenter_refuses_plain_text_to_the_lan():
    with pytest.raises(TransportError, match="--curve-dir"):
        Worker(RedChannel(), connect=["tcp://10.0.0.7:5555"])
    with pytest.raises(TransportError, match="--curve-dir"):
        Worker(RedChannel(), bind=["tcp://*:5556"])
