"""The sink's native-pass tests start from nothing: no HOLOCAM_SINK_NATIVE* setting, no library
loaded, no pass timed. Import the fixture into a test module to make it apply there (autouse)."""

from __future__ import annotations

import pytest

from capture_sink.native import choice, library


@pytest.fixture(autouse=True)
def fresh_native_choices(monkeypatch):
    monkeypatch.delenv(library.ENABLE_ENV, raising=False)
    monkeypatch.delenv(library.ISA_ENV, raising=False)
    choice.forget()
    library.forget()
    yield
    choice.forget()
    library.forget()
