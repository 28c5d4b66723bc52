"""Live settings as the API sees them: read them from the running sink, check a change, apply it.

A change is a JSON object with any subset of the keys `GET /api/settings` returns. Everything is
checked before anything is applied; the only step that can still fail afterwards is reading a
background file, and it runs first, so a bad request changes nothing. The app applies changes
between two frames; `wait_applied` waits (bounded) until it has, so the answer shows the new
state and the next request builds on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any

from capture_sink.config import SEGMENTING_MODES, ConfigError
from capture_sink.control_api import PAUSE_MODES, SinkControl
from capture_sink.effects import EFFECTS
from capture_sink.refine import FRACTION_RANGES, PIXEL_RANGES, PRESETS, RefineConfig, RefineConfigError, preset

from .background_files import BackgroundFiles, BackgroundNotAllowed

logger = logging.getLogger(__name__)

RANGES = {**FRACTION_RANGES, **PIXEL_RANGES}   # the sliders offer what verify_refine_config accepts

SETTING_KEYS = ("effect", "background", "preset", "refine", "paused", "segmenting", "segmenting_mode")
APPLY_TIMEOUT_S = 2.0       # the frame loop applies changes between frames: a few frames at most
_REFINE_FIELDS = {f.name: f for f in fields(RefineConfig)}
_INT_FIELDS = {f.name for f in fields(RefineConfig) if f.type == "int"}      # whole pixels
_STR_FIELDS = {f.name for f in fields(RefineConfig) if f.type not in ("int", "float")}


class ChangeError(ValueError):
    """A change the API refuses (400); the message is one line naming the fix."""


@dataclass
class Change:
    """A checked change: what to apply, and the settings to expect once the app has applied it."""

    effect: str | None = None
    background: str | None = None
    preset: str | None = None
    refine: RefineConfig | None = None
    paused: str | None = None
    segmenting_mode: str | None = None
    expected: dict[str, Any] = field(default_factory=dict)


def current_settings(app: SinkControl) -> dict[str, Any]:
    """app.settings() plus the on-demand mode (`segmenting` is what the app does right now)."""
    settings = dict(app.settings())
    watch = app.viewer_watch
    settings["segmenting_mode"] = watch.mode if watch is not None else ("on" if app.segmenting else "off")
    return settings


def _refine_value(name: str, value: Any) -> Any:
    if name in _STR_FIELDS:
        if not isinstance(value, str):
            raise ChangeError(f"refine {name} must be text, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChangeError(f"refine {name} must be a number, got {value!r}")
    if name in _INT_FIELDS:
        if float(value) != int(value):
            raise ChangeError(f"refine {name} {value!r} must be a whole number of pixels")
        return int(value)
    return float(value)


def check_change(app: SinkControl, body: Any, files: BackgroundFiles | None = None) -> Change:
    """Check a change against the app's current state; raises ChangeError without applying anything.

    `files` decides which background files a web client may use (None: any, for local callers).
    """
    if not isinstance(body, dict) or not body:
        raise ChangeError("send a JSON object with the settings to change, e.g. {\"effect\": \"none\"}")
    unknown = sorted(set(body) - set(SETTING_KEYS))
    if unknown:
        raise ChangeError(f"unknown setting {', '.join(map(repr, unknown))}: valid settings are "
                          f"{', '.join(SETTING_KEYS)}")
    change = Change()
    for key in ("effect", "background", "preset", "paused", "segmenting_mode"):
        if key in body and not isinstance(body[key], str):
            raise ChangeError(f"{key} must be text, got {body[key]!r}")
    if "effect" in body:
        if body["effect"] not in EFFECTS:
            raise ChangeError(f"unknown effect {body['effect']!r}: choose one of {', '.join(sorted(EFFECTS))}")
        change.effect = change.expected["effect"] = body["effect"]
    if "background" in body:
        spec = body["background"]
        if not spec.strip():
            raise ChangeError("background is empty: give default, blur, green, none, a colour or a file")
        if files is not None:
            try:
                spec = files.check(spec)
            except BackgroundNotAllowed as exc:
                raise ChangeError(str(exc)) from None
        change.background = change.expected["background"] = spec
    base = app.refine_config()
    if "preset" in body:
        try:
            base = preset(body["preset"])
        except RefineConfigError as exc:
            raise ChangeError(str(exc)) from None
        change.preset = body["preset"]
        change.refine = base
    if "refine" in body:
        updates = body["refine"]
        if not isinstance(updates, dict):
            raise ChangeError("refine must be an object, e.g. {\"threshold\": 0.4, \"blur\": 5}")
        bad = sorted(set(updates) - set(_REFINE_FIELDS))
        if bad:
            raise ChangeError(f"unknown refine setting {', '.join(map(repr, bad))}: valid ones are "
                              f"{', '.join(_REFINE_FIELDS)}")
        try:
            change.refine = base.replace(**{k: _refine_value(k, v) for k, v in updates.items()})
        except RefineConfigError as exc:
            raise ChangeError(str(exc)) from None
    if change.refine is not None:
        change.expected["refine"] = change.refine.as_dict()
    if "paused" in body:
        if body["paused"] not in PAUSE_MODES:
            raise ChangeError(f"paused {body['paused']!r}: choose one of {', '.join(PAUSE_MODES)}")
        change.paused = change.expected["paused"] = body["paused"]
    mode = body.get("segmenting_mode")
    if "segmenting" in body:
        value = body["segmenting"]
        if isinstance(value, bool):
            value = "on" if value else "off"
        if mode is not None and value != mode:
            raise ChangeError("segmenting and segmenting_mode disagree: send one of them")
        mode = value
    if mode is not None:
        if mode not in SEGMENTING_MODES:
            raise ChangeError(f"segmenting {mode!r}: choose one of {', '.join(SEGMENTING_MODES)} (or true/false)")
        change.segmenting_mode = mode
    return change


def apply_change(app: SinkControl, change: Change) -> None:
    """Queue a checked change on the app. Raises the app's BackgroundError before anything else."""
    if change.background is not None:
        watcher = app.background_watcher
        if watcher is not None:
            watcher.note(change.background)            # hot reload: this version of the file is loaded
        app.set_background(change.background)          # reads the file: the one step that can fail
    if change.effect is not None:
        app.set_effect(change.effect)
    if change.preset is not None:
        app.set_preset(change.preset)
    if change.refine is not None:
        # Absolute values: the refine config the user asked for, whatever was queued before.
        app.set_refine(**change.refine.as_dict())
    if change.paused is not None:
        app.pause(change.paused)
    if change.segmenting_mode is not None:
        watch = app.viewer_watch
        if watch is not None:
            watch.set_mode(change.segmenting_mode)
        else:
            try:
                app.set_segmenting(change.segmenting_mode != "off")
            except ConfigError as exc:
                raise ChangeError(str(exc)) from None
    logger.info("I: web change: %s", ", ".join(k for k in SETTING_KEYS if getattr(change, k, None) is not None))


async def wait_applied(app: SinkControl, expected: dict[str, Any], timeout_s: float = APPLY_TIMEOUT_S) -> bool:
    """Wait until app.settings() shows `expected`, and one frame made with it has gone to the outputs.

    The frame loop applies changes at the start of a frame, so a snapshot asked for after this
    returns shows the change.
    """
    deadline = time.monotonic() + timeout_s
    while not all(app.settings().get(k) == v for k, v in expected.items()):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    frames = app.stats.counters.get("frames", 0)
    while app.stats.counters.get("frames", 0) <= frames:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def choices(app: SinkControl) -> dict[str, Any]:
    """What the page offers in its controls."""
    return {
        "effect": sorted(EFFECTS),
        "preset": list(PRESETS),
        "paused": list(PAUSE_MODES),
        "segmenting_mode": list(SEGMENTING_MODES),
        "background": ["default", "blur", "green", "none"],
        "refine": {name: list(RANGES[name]) for name in ("threshold", "feather", "blur", "dilate", "erode")},
    }
