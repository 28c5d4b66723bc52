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


def modprobe_line(device: str) -> str:
    digits = "".join(ch for ch in Path(device).name if ch.isdigit()) or "20"
    return f'sudo modprobe v4l2loopback devices=1 video_nr={digits} card_label="holocam" exclusive_caps=1'


def on_host(line: str, in_container: bool) -> str:
    return f"on the host (a container cannot load modules): {line}" if in_container else line
