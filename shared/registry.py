"""One registry shape for every plug-in kind: effects, backgrounds, sources, outputs and models.

A registry maps a key ("hologram", "v4l2", "selfie") to the class or factory that builds it.
Adding a plug-in is one class or function in one file plus its registration:

    EFFECTS = Registry("effect", EffectError)

    @EFFECTS.register("sepia")
    class Sepia(Effect): ...

A plug-in whose module cannot be imported on this machine (a missing optional package) is
recorded with `unavailable(key, reason)`, so asking for it names the reason and the fix
instead of "unknown".
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """A dict of key -> plug-in with registration and one-line errors for bad keys.

    Args:
        kind: what is registered, for messages ("effect", "output").
        error: the exception class raised for an unknown or unavailable key.
    """

    def __init__(self, kind: str, error: type[Exception] = ValueError) -> None:
        super().__init__()
        self.kind = kind
        self.error = error
        self.missing: dict[str, str] = {}  # key -> why it cannot be used here

    def add(self, key: str, item: T) -> T:
        """Register `item` under `key`; a second, different item for one key is an error."""
        if key in self and self[key] is not item:
            raise self.error(f"{self.kind} {key!r} is registered twice ({_where(self[key])} and "
                             f"{_where(item)}): give one of them another key")
        self[key] = item
        self.missing.pop(key, None)
        return item

    def register(self, key: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda item: self.add(key, item)

    def unavailable(self, key: str, reason: str) -> None:
        """Record that `key` exists but cannot be used on this machine, and why (names the fix)."""
        if key not in self:
            self.missing[key] = reason

    def get_or_raise(self, key: str) -> T:
        """The plug-in for `key`, or `error` naming the choices (or why this one is unavailable)."""
        if key in self:
            return self[key]
        if key in self.missing:
            raise self.error(f"{self.kind} {key!r} is not available here: {self.missing[key]}")
        raise self.error(f"unknown {self.kind} {key!r}: choose one of {', '.join(self.choices())}")

    def choices(self) -> list[str]:
        """The usable keys, sorted."""
        return sorted(self)


def _where(item: object) -> str:
    return f"{getattr(item, '__module__', '?')}.{getattr(item, '__qualname__', repr(item))}"
