"""Fixtures for the whole suite: no test reads or writes the user's own holocam folders.

The sink keeps its web token in $XDG_CONFIG_HOME/holocam/ and uploads in $XDG_DATA_HOME/holocam/;
the whole session (and every process a test starts, which inherits the environment) gets empty
ones. Session-scoped and autouse, so module-scoped fixtures that start sinks see them too.

The repository root goes on sys.path: tests share bench/harness.py (real segmenter processes,
free_port, ...) with the benchmarks, and bench/ is not an installed package.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session", autouse=True)
def private_holocam_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(home / "config"))
        patch.setenv("XDG_DATA_HOME", str(home / "data"))
        yield
