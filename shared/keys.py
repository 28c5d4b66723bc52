"""CurveZMQ key files: make them, load them, and admit segmenters by them (the allow-list).

    python -m shared.keys keys/                       # sink + one shared segmenter key (make keys)
    python -m shared.keys keys/ --segmenter gpu-box   # plus a key pair of its own for gpu-box

Layout of DIR (existing files are kept, never overwritten):

    DIR/sink.key                  sink public key       -> every segmenter machine
    DIR/sink.key_secret           sink key pair         -> the sink machine only
    DIR/segmenter.key             segmenter public key  (default name; also in authorized/)
    DIR/segmenter.key_secret      segmenter key pair    -> segmenter machines / containers
    DIR/NAME.key, NAME.key_secret one more pair per --segmenter NAME
    DIR/authorized/*.key          the sink's allow-list: public keys of segmenters it admits

The sink uses `--curve-dir DIR` (its pair + authorized/); a segmenter uses `--curve-dir DIR`
(its pair, `--curve-name NAME` picks which, + sink.key). A segmenter machine needs only
sink.key, NAME.key and NAME.key_secret. To revoke a segmenter, delete its file from
authorized/ (the sink re-reads the folder; no restart). Secret files are created mode 0600.

`sink_keys` / `replica_keys` load one side's keys from that layout for the sockets
(shared.transport); `AllowList` is the sink's ZAP credentials provider over authorized/.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq.auth
from zmq.utils import z85

from .errors import TransportError
from .ratelog import RateLimitedLog

logger = logging.getLogger(__name__)

SINK_KEY_NAME = "sink"
DEFAULT_REPLICA_KEY_NAME = "segmenter"
AUTHORIZED_DIR = "authorized"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# -- making keys -----------------------------------------------------------------------------------


def _make_pair(folder: Path, name: str) -> bool:
    """Create NAME.key / NAME.key_secret unless they exist; True if created."""
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if public.exists() and secret.exists():
        return False
    if public.exists() or secret.exists():
        raise TransportError(f"{folder} has only half of the {name!r} key pair: delete "
                             f"{public.name}/{secret.name} and run this command again")
    old_umask = os.umask(0o077)   # the secret must never exist world-readable, even briefly
    try:
        zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(old_umask)
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)
    return True


def make_keys(folder: str | os.PathLike, segmenters: list[str] | None = None) -> list[Path]:
    """Create the key layout described in the module docstring; returns the files created.

    Args:
        folder: the keys folder (created if missing).
        segmenters: extra segmenter names to make their own key pairs for.
    """
    base = Path(folder).expanduser()
    names = [DEFAULT_REPLICA_KEY_NAME, *(segmenters or [])]
    for name in names:
        if not _NAME.match(name) or name == SINK_KEY_NAME:
            raise TransportError(f"segmenter name {name!r}: use letters, digits, '.', '_' or '-' "
                                 f"(and not {SINK_KEY_NAME!r})")
    try:
        (base / AUTHORIZED_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransportError(f"cannot create {base} ({exc.strerror}): choose a writable folder") from None
    created = []
    for name in [SINK_KEY_NAME, *names]:
        if _make_pair(base, name):
            created += [base / f"{name}.key", base / f"{name}.key_secret"]
    for name in names:
        allowed = base / AUTHORIZED_DIR / f"{name}.key"
        if not allowed.exists():
            shutil.copyfile(base / f"{name}.key", allowed)
            created.append(allowed)
    return created


# -- loading keys ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CurveKeys:
    """One side's CurveZMQ key material (z85-encoded keys).

    A sink has `authorized_dir` (the allow-list: segmenters' public key files); a segmenter has
    `server_key` (the sink's public key, pinned).
    """
    public: bytes
    secret: bytes
    server_key: bytes | None = None
    authorized_dir: Path | None = None

    @property
    def is_server(self) -> bool:
        return self.authorized_dir is not None


def _load_key_file(path: Path, *, need_secret: bool, what: str, fix: str) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        reason = "is missing" if not path.exists() else f"is not a key file ({exc})"
        raise TransportError(f"{what} {path} {reason}: {fix}") from None
    if need_secret and not secret:
        raise TransportError(f"{what} {path} has no secret key: pass the .key_secret file, {fix}")
    for key in (public, secret):
        if key is not None and not is_z85_key(key):
            raise TransportError(f"{what} {path} holds a malformed key: {fix}")
    return public, secret


def is_z85_key(key: bytes) -> bool:
    """Whether `key` is a z85-encoded 32-byte CurveZMQ key."""
    try:
        return len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def sink_keys(curve_dir: str | os.PathLike, *, secret_file: str | os.PathLike | None = None,
              authorized_dir: str | os.PathLike | None = None) -> CurveKeys:
    """The sink's keys from a folder made by `python -m shared.keys DIR`.

    Args:
        curve_dir: the keys folder; uses DIR/sink.key_secret and DIR/authorized/.
        secret_file: another sink key pair file instead of DIR/sink.key_secret.
        authorized_dir: another allow-list folder instead of DIR/authorized/.
    Returns:
        CurveKeys for `SinkSocket` / `Dispatcher(curve=...)`.
    """
    base = Path(curve_dir).expanduser()
    fix = f"run `python -m shared.keys {base}` (make keys) or pass the right --curve-dir"
    secret_path = Path(secret_file) if secret_file else base / f"{SINK_KEY_NAME}.key_secret"
    public, secret = _load_key_file(secret_path, need_secret=True, what="the sink key pair", fix=fix)
    allowed = Path(authorized_dir) if authorized_dir else base / AUTHORIZED_DIR
    if not allowed.is_dir() or not any(allowed.glob("*.key")):
        raise TransportError(f"the allow-list folder {allowed} has no segmenter public keys (*.key): {fix}, "
                             f"or copy a segmenter's NAME.key into it")
    return CurveKeys(public=public, secret=secret, authorized_dir=allowed)


def replica_keys(curve_dir: str | os.PathLike, *, name: str = DEFAULT_REPLICA_KEY_NAME,
                 secret_file: str | os.PathLike | None = None,
                 sink_key_file: str | os.PathLike | None = None) -> CurveKeys:
    """A segmenter's keys: its own pair (DIR/NAME.key_secret) and the sink's public key (DIR/sink.key)."""
    base = Path(curve_dir).expanduser()
    fix = f"run `python -m shared.keys {base}` (make keys) or pass the right --curve-dir"
    secret_path = Path(secret_file) if secret_file else base / f"{name}.key_secret"
    public, secret = _load_key_file(secret_path, need_secret=True, what="the segmenter key pair", fix=fix)
    sink_path = Path(sink_key_file) if sink_key_file else base / f"{SINK_KEY_NAME}.key"
    server_key, _ = _load_key_file(sink_path, need_secret=False, what="the sink's public key",
                                   fix=f"copy sink.key from the sink's keys folder ({fix})")
    return CurveKeys(public=public, secret=secret, server_key=server_key)


# -- the sink's allow-list -------------------------------------------------------------------------

class AllowList:
    """ZAP credentials provider: admits client keys whose NAME.key is in the allow-list folder.

    The folder is re-read when it changes, so adding a segmenter needs no sink restart.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stamp: tuple | None = None
        self._keys: frozenset[bytes] = frozenset()
        self._lock = threading.Lock()
        self._warn = RateLimitedLog(logger, 10.0)
        self.refused = 0

    def _reload(self) -> None:
        try:
            files = sorted(self.folder.glob("*.key"))
            stamp = tuple((f.name, f.stat().st_mtime_ns) for f in files)
        except OSError:
            files, stamp = [], None
        if stamp == self._stamp:
            return
        keys = set()
        for path in files:
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError):
                self._warn.warning(f"bad:{path}", "W: ignoring %s in the allow-list: not a public key file", path)
                continue
            if is_z85_key(public):
                keys.add(public)
        self._keys, self._stamp = frozenset(keys), stamp

    def callback(self, domain: str, key: bytes) -> bool:
        with self._lock:
            self._reload()
            allowed = key in self._keys
        if not allowed:
            self.refused += 1
            self._warn.warning(f"refused:{key!r}", "W: refused a segmenter with unknown key %s: to admit it, "
                               "copy its NAME.key into %s", key.decode("ascii", "replace"), self.folder)
        return allowed


# -- command line ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.keys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="keys folder, e.g. keys/")
    parser.add_argument("--segmenter", action="append", default=[], metavar="NAME",
                        help="also make a key pair for this segmenter (repeatable)")
    args = parser.parse_args(argv)
    try:
        created = make_keys(args.folder, args.segmenter)
    except TransportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"all keys already exist in {args.folder}; nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
