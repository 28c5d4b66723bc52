"""Make CurveZMQ key pairs for a sink and its segmenters.

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
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
from pathlib import Path

import zmq.auth

from .transport import AUTHORIZED_DIR, DEFAULT_REPLICA_KEY_NAME, SINK_KEY_NAME, TransportError

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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
