"""The web page's access token, notebook-server style: random, kept private, the same after a restart.

With no `--http-token` configured, the sink makes one (`secrets.token_urlsafe(32)`, 43 characters)
on its first start and keeps it in `$XDG_CONFIG_HOME/holocam/http_token` (`~/.config/holocam/`,
the folder of sink.toml; in compose a named volume), mode 0600 in a 0700 folder when it creates
that folder. A restart reads it back, so an open tab keeps working. To rotate it, delete the file
and restart: a new one is made, and every browser has to open the new URL.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from capture_sink.config import HTTP_TOKEN_MIN_CHARS, ConfigError

logger = logging.getLogger(__name__)

TOKEN_FILE_NAME = "http_token"
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """(token, created): the token stored at `path`, or a new one written there (0600).

    Raises:
        ConfigError: the file cannot be read or written, or holds no usable token.
    """
    try:
        return _read(path), False
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    except FileExistsError:        # another sink made it at the same moment: use that one
        return _read(path), False
    except OSError as exc:
        raise ConfigError(f"cannot store the web token in {path} ({exc.strerror}): make that folder writable, "
                          f"or set --http-token-file / HOLOCAM_HTTP_TOKEN") from None
    logger.info("I: made a new web token in %s", path)
    return token, True


def _read(path: Path) -> str:
    try:
        info = path.stat()
        if info.st_mode & 0o077 and stat.S_ISREG(info.st_mode):
            os.chmod(path, 0o600)   # readable by others: close it before using the secret inside
            logger.warning("W: web token file %s was readable by other users: now 0600; if they may have "
                           "read it, delete the file and restart to make a new token", path)
        token = path.read_text().strip()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read the web token file {path} ({exc.strerror}): check its permissions, "
                          f"or delete it and restart to make a new one") from None
    if len(token) < HTTP_TOKEN_MIN_CHARS or not set(token) <= _ALPHABET:
        raise ConfigError(f"web token file {path} holds no usable token: delete it and restart to make a new one")
    return token
