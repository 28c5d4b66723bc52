"""The one error the transport raises for problems a user can fix (endpoints, keys, sockets)."""

from __future__ import annotations


class TransportError(RuntimeError):
    """A transport problem the user can fix; the message is one line that names the fix."""
