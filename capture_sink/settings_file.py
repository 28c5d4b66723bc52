"""Where the sink's settings come from: command-line flags, HOLOCAM_* variables, a TOML file, defaults.

Precedence, highest first:

1. a flag given on the command line (`--effect none`);
2. an environment variable `HOLOCAM_<FIELD>` (`HOLOCAM_EFFECT=none`; lists are comma-separated:
   `HOLOCAM_OUTPUT=v4l2,null`);
3. the config file: `--config PATH`, else `$HOLOCAM_CONFIG`, else `$XDG_CONFIG_HOME/holocam/sink.toml`
   (`~/.config/holocam/sink.toml`) when that file exists;
4. the defaults of `capture_sink.config.SinkConfig`.

The file is flat TOML whose keys are `SinkConfig`'s field names (`python -m capture_sink run
--print-config` prints one with every key, ready to save):

    source = "/dev/video0"
    effect = "hologram"
    background = "~/Pictures/holodeck.jpg"
    outputs = ["v4l2"]
    http_port = 8080

Unknown keys and wrongly typed values are rejected with one line naming the valid keys or the
expected type. Most variables are named after their field; four keep their flag's name:
HOLOCAM_FILE (file_path), HOLOCAM_OUTPUT (outputs), HOLOCAM_SEGMENTER (segmenters), HOLOCAM_SEGMENTING
(segmenting_mode; `segmenting` alone means whether frames go to the segmenters right now). `compose_network` is
HOLOCAM_COMPOSE_NETWORK, which the compose files set.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import ConfigError, SinkConfig, validate

logger = logging.getLogger(__name__)

ENV_PREFIX = "HOLOCAM_"
CONFIG_ENV = "HOLOCAM_CONFIG"
CONFIG_NAME = "sink.toml"
ENV_NAMES = {"file_path": "HOLOCAM_FILE", "outputs": "HOLOCAM_OUTPUT", "segmenters": "HOLOCAM_SEGMENTER",
             "segmenting_mode": "HOLOCAM_SEGMENTING"}
# Keys a config file may still use from before a field was renamed: old key -> field.
RENAMED_KEYS = {"segmenting": "segmenting_mode"}
SECRET_FIELDS = frozenset({"http_token"})
SOURCES = ("default", "file", "env", "flag")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Setting:
    """One configurable field of SinkConfig: its value kind and its environment variable."""

    name: str
    kind: type          # str, int, float, bool or list (of str)
    env: str
    optional: bool      # None is a valid value (only the default can be None)


def settings() -> dict[str, Setting]:
    """The configurable fields of SinkConfig, read from its annotations (new fields join by themselves)."""
    kinds = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list}
    out: dict[str, Setting] = {}
    for f in fields(SinkConfig):
        text = str(f.type).replace(" ", "")
        optional = text.endswith("|None") or text.startswith("None|")
        kind = kinds.get(text.replace("|None", "").replace("None|", ""))
        if kind is None:
            continue
        out[f.name] = Setting(f.name, kind, ENV_NAMES.get(f.name, ENV_PREFIX + f.name.upper()), optional)
    return out


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CONFIG_HOME/holocam/sink.toml (XDG_CONFIG_HOME defaults to ~/.config)."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "holocam" / CONFIG_NAME


def default_data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_DATA_HOME/holocam (~/.local/share/holocam): holocam's own files, e.g. uploaded backgrounds."""
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "holocam"


# -- reading each layer ----------------------------------------------------------------------------

def _coerce(setting: Setting, value: Any, where: str) -> Any:
    """`value` as the setting's kind (TOML values are typed already; env values are text)."""
    kind, name = setting.kind, setting.name
    from_env = where.startswith(ENV_PREFIX)
    if from_env and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() not in _TRUE + _FALSE:
                    raise ValueError
                return text.lower() in _TRUE
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
        except ValueError:
            pass
        else:
            if kind is list:
                return [part.strip() for part in text.split(",") if part.strip()]
    if kind is list:
        if isinstance(value, str):
            return [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool)):
        return value
    example = {str: '"text"', int: "1280", float: "30.0", bool: "true", list: '["a", "b"]'}[kind]
    if from_env:
        example = {str: "text", int: "1280", float: "30", bool: "1 or 0", list: "a,b"}[kind]
        raise ConfigError(f"{where}={value!r} is not {_kind_name(kind)}: write e.g. {where}={example}")
    raise ConfigError(f"{name} = {value!r} in {where} is not {_kind_name(kind)}: write e.g. {name} = {example}")


def _kind_name(kind: type) -> str:
    return {str: "text", int: "a whole number", float: "a number", bool: "true or false",
            list: "a list of strings"}[kind]


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML file; ConfigError for a missing file, bad TOML, unknown keys or types."""
    known = settings()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found: check --config / {CONFIG_ENV}, or create it "
                          f"with `python -m capture_sink run --print-config > {path}`") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path} ({exc.strerror}): check its permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}): fix that line") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in RENAMED_KEYS and RENAMED_KEYS[key] not in data:
            key = RENAMED_KEYS[key]   # a file saved before the rename still reads
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown key {key!r} in {path}: {hint}valid keys are {', '.join(sorted(known))}")
        values[key] = _coerce(known[key], value, str(path))
    return values


def read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings given as HOLOCAM_* variables (other HOLOCAM_* variables are left to their users).

    An empty secret (`HOLOCAM_HTTP_TOKEN=`, what compose passes when .env sets none) counts as
    not given, so the file or the sink's own generated token decides.
    """
    return {name: _coerce(s, environ[s.env], s.env) for name, s in settings().items()
            if s.env in environ and not (name in SECRET_FIELDS and environ[s.env] == "")}


def explicit_flags(make_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None) -> dict[str, Any]:
    """Only the options written on the command line (dest -> value), not the parser's defaults.

    Parses `argv` again with every default suppressed, so a flag that happens to equal its
    default still counts as given (and wins over the environment and the file).
    """
    parser = make_parser()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:  # argparse has no public way to list a parser's actions
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.dest != "help":
                action.default = argparse.SUPPRESS
    namespace = parser.parse_args(argv)
    return vars(namespace)


# -- layering ------------------------------------------------------------------------------------------

@dataclass
class LoadedConfig:
    """The validated config, where each setting came from, and the file that was read (if any)."""

    config: SinkConfig
    sources: dict[str, str]
    path: Path | None


def load_config(flags: Mapping[str, Any], environ: Mapping[str, str] = os.environ,
                config_path: str | os.PathLike | None = None, *, check: bool = True) -> LoadedConfig:
    """Build the SinkConfig from flags > environment > config file > defaults.

    Args:
        flags: options given on the command line (see `explicit_flags`); keys that are not
            SinkConfig fields (`command`, `verbose`, ...) are ignored.
        environ: the environment to read HOLOCAM_* variables from.
        config_path: an explicit config file (must exist); None: $HOLOCAM_CONFIG, else the
            default path if that file exists.
        check: run `config.validate` (verify_* checks, `auto` resolved).
    Raises:
        ConfigError: a bad file, variable or value; one line naming the fix.
    """
    path: Path | None
    if config_path is not None:
        path = Path(config_path).expanduser()
    elif environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV]).expanduser()
    else:
        path = default_config_path(environ)
        path = path if path.is_file() else None
    known = settings()
    layers = [("file", read_config_file(path) if path is not None else {}),
              ("env", read_env(environ)),
              ("flag", {k: v for k, v in flags.items() if k in known and v is not None})]
    values: dict[str, Any] = {}
    sources = dict.fromkeys(known, "default")
    for source, layer in layers:
        for key, value in layer.items():
            values[key] = value
            sources[key] = source
    config = SinkConfig(**values)
    if check:
        config = validate(config)
    logger.debug("config from %s: %s", path or "no file",
                 ", ".join(f"{k}={sources[k]}" for k in sorted(sources) if sources[k] != "default"))
    return LoadedConfig(config, sources, path)


def format_config(loaded: LoadedConfig) -> str:
    """The effective configuration as TOML (secrets masked), each line commented with its source."""
    known = settings()
    lines = [f"# holocam sink configuration ({'file: ' + str(loaded.path) if loaded.path else 'no config file'})",
             "# precedence: flag > HOLOCAM_* environment > config file > default"]
    for name in known:
        value = getattr(loaded.config, name)
        source = loaded.sources.get(name, "default")
        if value is None:
            lines.append(f"# {name} is unset  # {source}")
            continue
        if name in SECRET_FIELDS and value:
            value = "***"
        lines.append(f"{name} = {_toml_value(value)}  # {source}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string
