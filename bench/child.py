"""A benchmark's child process driven over a line protocol: one JSON reply per line of words.

Benchmarks run what they measure in fresh processes (their own threads, allocator and torch set-up);
the parent (`LineChild`) writes a command line to the child's stdin and reads one JSON line back.
The child (`serve`) answers "METHOD ARG ..." with its runner's METHOD(ARG, ...), numbers as floats,
and "quit" by closing the runner. The child's stderr goes to its log file, whose tail is in the
error when the child dies.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]


class LineChild:
    """`python -m <module> --child <role> <args> --child-log <log>`; `info` is its first reply."""

    def __init__(self, module: str, role: str, args: list[str], log: Path) -> None:
        self.module, self.role, self.log = module, role, log
        self._log_file = self.log.open("ab")
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-m", module, "--child", role, *args, "--child-log", str(log)],
                                     cwd=REPO, env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log_file)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.module} child {self.role!r} exited with {self.proc.returncode}:\n{tail}")
        return json.loads(line)

    def ask(self, *words: object) -> dict:
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit")
                self.proc.wait(timeout=30)
            except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def serve(role: str, make_runner: Callable[[], Any], ready: Callable[[Any], dict]) -> int:
    """The child's side: build the runner, reply {"ready": True, **ready(runner)}, then serve commands.

    Stdout is the channel, so everything else printed goes to stderr (the log file).
    """
    channel = sys.stdout
    sys.stdout = sys.stderr            # nothing else may write to the channel
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {role} %(levelname).1s %(name)s: %(message)s")
    runner = make_runner()

    def reply(obj: dict) -> None:
        channel.write(json.dumps(obj) + "\n")
        channel.flush()

    try:
        reply({"ready": True, **ready(runner)})
        for line in sys.stdin:
            command, *args = line.split()
            if command == "quit":
                break
            method = None if command.startswith("_") else getattr(runner, command, None)
            if method is None:
                reply({"error": f"unknown command {command!r}"})
                continue
            reply(method(*[number_or_word(a) for a in args]))
    finally:
        runner.close()
    reply({"bye": True})
    return 0


def number_or_word(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text
