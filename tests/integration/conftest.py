"""Fixtures for integration tests: real segmenter processes on loopback, Curve keys, test frames.

`segmenter_process` starts `python -m segmenter serve ...` processes (the real `selfie` model)
and stops every one after the test: SIGTERM, then SIGKILL. `module_segmenters` does the same for a
whole module, for tests that share replicas. SegmenterLauncher lives in bench/harness.py (the
benchmarks use it too); SinkProcess and the fuzzer in tests/helpers_transport.py, importable here
because this file puts tests/ on sys.path.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from bench.harness import SegmenterLauncher  # noqa: E402


@pytest.fixture
def segmenter_process(tmp_path: Path) -> Iterator[SegmenterLauncher]:
    """Start segmenters with `segmenter_process.start(connect=[...], replica_id=...)`; all stop after the test."""
    launcher = SegmenterLauncher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="module")
def module_segmenters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegmenterLauncher]:
    """Like `segmenter_process`, but the processes live for the whole test module."""
    launcher = SegmenterLauncher(tmp_path_factory.mktemp("segmenters"))
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="session")
def curve_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keys folder as `make keys` makes it, plus a 'stranger' pair that is not in the allow-list."""
    from shared.keys import make_keys
    folder = tmp_path_factory.mktemp("keys")
    make_keys(folder)
    stranger = tmp_path_factory.mktemp("stranger-keys")
    make_keys(stranger)               # its own sink + segmenter pair: unknown to `folder`'s sink
    (folder / "stranger").mkdir()
    for name in ("segmenter.key", "segmenter.key_secret"):
        (folder / "stranger" / name).write_bytes((stranger / name).read_bytes())
    (folder / "stranger" / "sink.key").write_bytes((folder / "sink.key").read_bytes())
    return folder


@pytest.fixture(scope="session")
def selfie_reference():
    """The real selfie model in this process, to check what replicas answer."""
    from segmenter.model import create_model
    return create_model("selfie", threads=1)
