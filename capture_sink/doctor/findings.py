"""What a doctor check returns, and the helpers several checks share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

OK, WARN, INFO, FAIL = "ok", "warn", "info", "FAIL"
SYS = Path("/sys")


@dataclass(frozen=True)
class Finding:
    """One result: `status` is ok / warn / info / FAIL; `fix` says what to do about it."""

    check: str
    status: str
    message: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"[{self.status:^4}] {self.check}: {self.message}"]
        if self.fix:
            out.append(f"       fix: {self.fix}")
        return out


def on_host(line: str, in_container: bool) -> str:
    return f"on the host (a container cannot load modules): {line}" if in_container else line
