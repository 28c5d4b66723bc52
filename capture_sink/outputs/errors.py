"""The one exception every output raises for problems a user can fix."""


class OutputError(RuntimeError):
    """A problem with an output, as one line that names the fix.

    CLIs print ``str(error)`` without a traceback and exit 2.
    """
