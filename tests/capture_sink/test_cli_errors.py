"""Bad values on the command line and in HOLOCAM_* variables: one line naming the fix, exit status 2,
never a traceback, in every subcommand (`run`, `doctor`, `run --print-config`)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capture_sink.__main__ import build_parser, main
from capture_sink.settings_file import settings

REPO = Path(__file__).resolve().parents[2]
BAD = {int: "wide", float: "fast", bool: "maybe"}
TYPED = sorted(name for name, s in settings().items() if s.kind in BAD)
COMMANDS = [["run"], ["doctor"], ["run", "--print-config"]]


def _flag(field: str) -> str | None:
    """The `run` flag that sets `field` and takes a value, if there is one."""
    run = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    for action in run._actions:
        if action.dest == field and action.option_strings and action.nargs != 0:
            return action.option_strings[0]
    return None


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("HOLOCAM_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_every_typed_setting_is_covered() -> None:
    assert {"width", "height", "fps", "http_port", "max_mask_age_ms", "http_auth", "with_segmenter"} <= set(TYPED)


@pytest.mark.parametrize("field", TYPED)
def test_bad_environment_value_is_one_line_in_every_subcommand(field: str, env, capsys) -> None:
    setting = settings()[field]
    env.setenv(setting.env, BAD[setting.kind])
    for command in COMMANDS:
        code = main(command)
        err = capsys.readouterr().err
        assert code == 2, (command, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {setting.env}='{BAD[setting.kind]}' is not"), (command, err)
        assert f"write e.g. {setting.env}=" in lines[0]                     # names the fix


@pytest.mark.parametrize("field", [f for f in TYPED if _flag(f)])
def test_the_same_bad_flag_gives_the_same_kind_of_error(field: str, env, capsys) -> None:
    setting = settings()[field]
    env.setenv(setting.env, BAD[setting.kind])
    main(["run", "--print-config"])
    from_env = capsys.readouterr().err.strip()
    env.delenv(setting.env)
    with pytest.raises(SystemExit) as exited:
        main(["run", _flag(field), BAD[setting.kind], "--print-config"])
    from_flag = capsys.readouterr().err.strip()
    assert exited.value.code == 2
    assert len(from_flag.splitlines()) == 1 and from_flag.startswith("error: argument " + _flag(field))
    kind_words = from_env.split(" is not ", 1)[1].split(":")[0]                # "a whole number" / "a number"
    assert f"'{BAD[setting.kind]}' is not {kind_words}" in from_flag


def test_bad_width_in_real_processes_never_shows_a_traceback(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOLOCAM_")},
           "PYTHONPATH": str(REPO), "HOLOCAM_WIDTH": "wide"}
    for command in COMMANDS:
        result = subprocess.run([sys.executable, "-m", "capture_sink", *command], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == ("error: HOLOCAM_WIDTH='wide' is not a whole number: "
                                         "write e.g. HOLOCAM_WIDTH=1280"), result.stderr
