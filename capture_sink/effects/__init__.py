"""Foreground effects: a small registry so a new effect is one class in one file.

An effect turns the camera frame into the foreground that is composited over the background
(`apply(frame_bgr) -> bgr uint8`). Each plug-in module in this package defines one `Effect`
subclass with a `KEY`; defining the class registers it. Modules are imported here with
`pkgutil`, so dropping a file into `capture_sink/effects/` is all it takes:

    # capture_sink/effects/sepia.py
    class Sepia(Effect):
        KEY = "sepia"
        def apply(self, frame_bgr): ...

A plug-in that fails to import is logged and recorded as unavailable, never fatal (like
Frigate's detectors). `EFFECTS` is a `shared.registry.Registry`, the shape every plug-in kind uses.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from shared.registry import Registry

logger = logging.getLogger(__name__)


class EffectError(ValueError):
    """A bad effect name or option; the message is one line naming the fix."""


EFFECTS: Registry[type["Effect"]] = Registry("effect", EffectError)


class Effect(ABC):
    """One foreground effect. Subclasses set `KEY` and implement `apply`.

    Options are keyword arguments of the subclass's `__init__`; `create_effect` checks them.
    `apply` may return a buffer it owns and reuses on the next call (preallocated output), or
    the input itself for identity effects: consume the result before calling `apply` again.
    """

    KEY: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        key = cls.__dict__.get("KEY")
        if key is None:
            return  # an abstract intermediate class
        EFFECTS.add(key, cls)

    @abstractmethod
    def apply(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The foreground after the effect: BGR uint8 of the same shape as `frame_bgr`."""

    @property
    def fuses_composite(self) -> bool:
        """True while `composite` runs the effect and the blend as one pass (then the sink does
        not run the effect on its own ahead of the mask: that would cost the fused pass)."""
        return False

    def composite(self, frame_bgr: np.ndarray, background: np.ndarray, alpha: np.ndarray,
                  compositor, yuyv: bool = False, background_yuyv: np.ndarray | None = None) -> np.ndarray:
        """The effect's foreground over `background` through `alpha` (the sink's last step).

        An effect with a fused pass (the hologram's native one) overrides this to skip the
        full-frame foreground in between; the result is the compositor's or the effect's buffer.
        With `yuyv` (every output takes YUYV) the result may be a YUYV (H, W, 2) frame instead;
        `background_yuyv` is then the still background as YUYV (Compositor.background_yuyv), or None.
        """
        return compositor.composite(self.apply(frame_bgr), background, alpha, yuyv=yuyv,
                                    background_yuyv=background_yuyv)


def _options_of(cls: type[Effect]) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def create_effect(name: str, **options: Any) -> Effect:
    """Build the effect called `name` with its options.

    Args:
        name: an `EFFECTS` key, e.g. "hologram" or "none".
        options: keyword options of that effect (see its class), e.g. `seed=1` for hologram.
    Returns:
        A ready `Effect`.
    Raises:
        EffectError: unknown name or option, or an option value the effect rejects.
    """
    cls = EFFECTS.get_or_raise(name)
    known = _options_of(cls)
    unknown = sorted(set(options) - set(known))
    if unknown:
        allowed = ", ".join(known) or "none"
        raise EffectError(f"effect {name!r} has no option {', '.join(unknown)}: its options are {allowed}")
    return cls(**options)


def _load_plugins() -> None:
    for module in pkgutil.iter_modules(__path__):
        try:
            importlib.import_module(f"{__name__}.{module.name}")
        except Exception as exc:  # an optional plug-in must not take the sink down
            EFFECTS.unavailable(module.name, f"its module failed to import ({exc})")
            logger.warning("W: effect plug-in %s failed to import, skipped: %s", module.name, exc)


_load_plugins()
