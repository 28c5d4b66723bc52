"""Fixtures for the whole suite: no test reads or writes the user's own holocam folders.

The sink keeps its web token in $XDG_CONFIG_HOME/holocam/ and uploads in $XDG_DATA_HOME/holocam/;
the whole session (and every process a test starts, which inherits the environment) gets empty
ones. Session-scoped and autouse, so module-scoped fixtures that start sinks see them too.
"""

from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_holocam_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(home / "config"))
        patch.setenv("XDG_DATA_HOME", str(home / "data"))
        yield
