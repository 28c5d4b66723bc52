"""The errors a user can fix: the CLI prints their one-line message and exits 2, no traceback."""

from __future__ import annotations

from shared.errors import TransportError

from .backgrounds import BackgroundError
from .capture import CaptureError
from .config import ConfigError
from .effects import EffectError
from .outputs.errors import OutputError
from .refine import RefineConfigError
from .service import ServiceError

USER_ERRORS: tuple[type[BaseException], ...] = (
    BackgroundError, CaptureError, ConfigError, EffectError, OutputError, RefineConfigError, ServiceError,
    TransportError)
