"""How both services' command lines end: a user's mistake is one line on stderr and exit 2."""

from __future__ import annotations

import sys
from typing import Callable


def run_command(body: Callable[[], int], user_errors: tuple[type[BaseException], ...]) -> int:
    """Run a command's body and turn the errors a user can fix into `error: ...` and exit 2.

    Anything else is a bug and keeps its traceback; Ctrl-C exits 130 without one.
    """
    try:
        return body()
    except user_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
