"""Settings precedence (flags > HOLOCAM_* environment > config file > defaults), validation, --print-config."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from capture_sink.__main__ import build_parser
from capture_sink.config import ConfigError, SinkConfig
from capture_sink.settings_file import (default_config_path, explicit_flags, format_config, load_config,
                                        read_config_file, settings)


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no HOLOCAM_* settings and a config home without a sink.toml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLOCAM_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config-home")
    return env


def test_defaults_without_file_env_or_flags(clean_env: dict[str, str]) -> None:
    loaded = load_config({}, clean_env)
    assert loaded.path is None
    assert set(loaded.sources.values()) == {"default"}
    assert loaded.config.effect == SinkConfig().effect and loaded.config.http_host == "127.0.0.1"


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path, clean_env: dict[str, str]) -> None:
    path = write_toml(tmp_path / "sink.toml", 'effect = "none"\nbackground = "blur"\nfps = 24\nwidth = 640\n')
    env = {**clean_env, "HOLOCAM_BACKGROUND": "green", "HOLOCAM_FPS": "20"}
    loaded = load_config({"fps": 15.0}, env, path)
    c = loaded.config
    assert (c.effect, c.background, c.fps, c.width, c.height) == ("none", "green", 15.0, 640, SinkConfig().height)
    assert loaded.sources["effect"] == "file"
    assert loaded.sources["background"] == "env"
    assert loaded.sources["fps"] == "flag"
    assert loaded.sources["height"] == "default"


def test_default_file_is_read_from_xdg_config_home(clean_env: dict[str, str]) -> None:
    path = default_config_path(clean_env)
    assert path == Path(clean_env["XDG_CONFIG_HOME"]) / "holocam" / "sink.toml"
    path.parent.mkdir(parents=True)
    write_toml(path, 'preset = "seed"\n')
    loaded = load_config({}, clean_env)
    assert loaded.path == path and loaded.config.preset == "seed"


def test_holocam_config_variable_names_the_file(tmp_path: Path, clean_env: dict[str, str]) -> None:
    path = write_toml(tmp_path / "other.toml", 'effect = "none"\n')
    assert load_config({}, {**clean_env, "HOLOCAM_CONFIG": str(path)}).config.effect == "none"


def test_lists_from_file_and_env(tmp_path: Path, clean_env: dict[str, str]) -> None:
    path = write_toml(tmp_path / "sink.toml", 'outputs = ["null"]\nsegmenters = ["tcp://gpu-box:5556"]\n')
    c = load_config({}, clean_env, path).config
    assert c.outputs == ["null"] and c.segmenters == ["tcp://gpu-box:5556"]
    env = {**clean_env, "HOLOCAM_OUTPUT": "null, file", "HOLOCAM_SEGMENTER": "tcp://a:1,tcp://b:2"}
    c = load_config({}, env, path).config
    assert c.outputs == ["null", "file"] and c.segmenters == ["tcp://a:1", "tcp://b:2"]


def test_unknown_key_names_the_valid_ones(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "sink.toml", 'efect = "none"\n')
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    message = str(info.value)
    assert "unknown key 'efect'" in message and "did you mean 'effect'" in message
    assert "valid keys are" in message and "http_port" in message and "\n" not in message


@pytest.mark.parametrize("text, words", [
    ("width = \"wide\"\n", ["width", "whole number", "width = 1280"]),
    ("fps = true\n", ["fps", "a number"]),
    ("outputs = [1, 2]\n", ["outputs", "list of strings"]),
    ("with_segmenter = \"yes\"\n", ["with_segmenter", "true or false"]),
    ("effect = \n", ["not valid TOML", "line 1"]),
])
def test_wrong_values_in_the_file(tmp_path: Path, text: str, words: list[str]) -> None:
    path = write_toml(tmp_path / "sink.toml", text)
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("name, value, words", [
    ("HOLOCAM_WIDTH", "wide", ["HOLOCAM_WIDTH='wide'", "whole number", "HOLOCAM_WIDTH=1280"]),
    ("HOLOCAM_WITH_SEGMENTER", "maybe", ["true or false", "1 or 0"]),
    ("HOLOCAM_MASK_BUDGET_MS", "soon", ["a number"]),
])
def test_wrong_values_in_the_environment(clean_env: dict[str, str], name: str, value: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({}, {**clean_env, name: value})
    for word in words:
        assert word in str(info.value)


def test_boolean_environment_values(clean_env: dict[str, str]) -> None:
    assert load_config({}, {**clean_env, "HOLOCAM_WITH_SEGMENTER": "1"}).config.with_segmenter is True
    assert load_config({}, {**clean_env, "HOLOCAM_WITH_SEGMENTER": "0"}).config.with_segmenter is False
    assert load_config({}, {**clean_env, "HOLOCAM_HTTP": "off"}).config.http is False


def test_missing_explicit_file_is_an_error(tmp_path: Path, clean_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="not found.*--print-config"):
        load_config({}, clean_env, tmp_path / "nope.toml")


def test_values_are_validated_after_layering(tmp_path: Path, clean_env: dict[str, str]) -> None:
    path = write_toml(tmp_path / "sink.toml", "fps = 500.0\n")
    with pytest.raises(ConfigError, match="--fps 500.0 is out of range"):
        load_config({}, clean_env, path)


def test_web_beyond_loopback_needs_a_token(clean_env: dict[str, str]) -> None:
    # the token is on by default (made on the first start); only turning it off is refused
    assert load_config({"http_host": "0.0.0.0"}, clean_env).config.http_auth is True
    with pytest.raises(ConfigError, match="--no-http-auth with --http-host 0.0.0.0"):
        load_config({"http_host": "0.0.0.0", "http_auth": False}, clean_env)
    with pytest.raises(ConfigError, match="contradict"):
        load_config({"http_auth": False, "http_token": "t" * 20}, clean_env)
    with pytest.raises(ConfigError, match="too short"):
        load_config({"http_host": "0.0.0.0", "http_token": "abc"}, clean_env)
    config = load_config({"http_host": "0.0.0.0"}, {**clean_env, "HOLOCAM_HTTP_TOKEN": "x" * 24}).config
    assert config.http_token == "x" * 24
    assert load_config({"http_host": "0.0.0.0", "http": False}, clean_env).config.http is False


def test_explicit_flags_only_lists_what_was_typed() -> None:
    flags = explicit_flags(build_parser, ["run", "--effect", "hologram", "--width", "1280", "--output", "null"])
    assert flags["effect"] == "hologram" and flags["width"] == 1280 and flags["outputs"] == ["null"]
    assert "height" not in flags and "background" not in flags


def test_a_flag_equal_to_its_default_still_beats_the_environment(clean_env: dict[str, str]) -> None:
    flags = explicit_flags(build_parser, ["run", "--effect", "hologram"])
    assert load_config(flags, {**clean_env, "HOLOCAM_EFFECT": "none"}).config.effect == "hologram"


def test_every_plain_field_is_configurable() -> None:
    known = settings()
    assert "curve" not in known                     # keys come from files, not from a setting
    assert known["file_path"].env == "HOLOCAM_FILE" and known["outputs"].env == "HOLOCAM_OUTPUT"
    assert known["http_token"].kind is str and known["with_segmenter"].kind is bool


def test_print_config_round_trips(tmp_path: Path, clean_env: dict[str, str]) -> None:
    path = write_toml(tmp_path / "sink.toml", 'effect = "none"\noutputs = ["null"]\nhttp_port = 9001\n')
    env = {**clean_env, "HOLOCAM_BACKGROUND": "#1e90ff", "HOLOCAM_HTTP_TOKEN": "y" * 20}
    done = subprocess.run([sys.executable, "-m", "capture_sink", "run", "--config", str(path), "--fps", "25",
                           "--print-config"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    assert 'effect = "none"  # file' in printed and 'background = "#1e90ff"  # env' in printed
    assert "fps = 25.0  # flag" in printed
    assert "y" * 20 not in printed and 'http_token = "***"' in printed     # secrets never printed
    values = tomllib.loads(printed)
    assert values["http_port"] == 9001 and values["outputs"] == ["null"]
    # what was printed, saved as a file (without the masked token), gives the same configuration
    del values["http_token"]
    saved = tmp_path / "saved.toml"
    saved.write_text(printed.replace('http_token = "***"', "# token left out"))
    again = load_config({}, clean_env, saved).config
    for key, value in values.items():
        assert getattr(again, key) == value, key


def test_cli_reports_a_bad_file_in_one_line(tmp_path: Path, clean_env: dict[str, str]) -> None:
    path = write_toml(tmp_path / "sink.toml", 'colour = "red"\n')
    done = subprocess.run([sys.executable, "-m", "capture_sink", "run", "--config", str(path), "--print-config"],
                          env=clean_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown key 'colour'") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_format_config_marks_sources(clean_env: dict[str, str]) -> None:
    text = format_config(load_config({"effect": "none"}, clean_env))
    assert 'effect = "none"  # flag' in text and "# precedence: flag > HOLOCAM_* environment" in text
