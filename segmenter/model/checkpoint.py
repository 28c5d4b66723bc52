"""Reading the user's icnet-resnet18 checkpoint (`ICNet_ResNet18.pth`), tolerant of what it pickles.

Human-Segmentation-PyTorch's trainer saves a dict with a 'state_dict' entry and pickles its own
logger beside the weights; that class does not exist here. Such a file is loaded with
`weights_only=False` (only for the file the user named, and saying so) with the logger replaced
by a stand-in. Every failure is one ModelError that names the fix.
"""

from __future__ import annotations

import logging
import os
import pickle
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .base import ModelError

logger = logging.getLogger(__name__)

KEY_LIST_LIMIT = 6                   # key names shown per kind in a mismatch error


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state_dict inside a checkpoint file, `module.` prefix (DataParallel) removed."""
    if not path.is_file():
        raise ModelError(f"{path} does not exist: give --weights the path of your ICNet_ResNet18.pth")
    checkpoint = _load_checkpoint(path)
    state_dict, found = checkpoint, _describe(checkpoint)
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        state_dict = checkpoint["state_dict"]  # the repo trainer's layout
        found = f"a 'state_dict' entry that is {_describe(state_dict)}"
    if not (isinstance(state_dict, Mapping) and state_dict
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items())):
        raise ModelError(f"{path} holds {found}, not a state_dict: give --weights a checkpoint with a "
                           f"'state_dict' entry (as Human-Segmentation-PyTorch saves) or a plain state_dict")
    if all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _describe(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return f"a {type(obj).__name__}"
    if not obj:
        return "an empty dict"
    odd = [f"{k}: {type(v).__name__}" for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if len(odd) < len(obj):  # mostly tensors: name the entries that are not
        return f"a dict with non-tensor entries ({_some(odd)})"
    return f"a dict with keys {_some([str(k) for k in obj])}"


class _StandIn:
    """Takes the place of a pickled object whose class is not importable here (the repo's logger)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _tolerant_pickle_module(missing: list[str]) -> types.ModuleType:
    """A pickle module for torch.load that replaces unimportable classes with `_StandIn`.

    The repo's checkpoints pickle its `utils.logger.Logger`, which does not exist outside a
    checkout of that repo; the weights do not depend on it.
    """

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):
                missing.append(f"{module}.{name}")
                return type(name, (_StandIn,), {"__module__": module})

    tolerant = types.ModuleType("holocam_tolerant_pickle")
    tolerant.Unpickler = Unpickler  # type: ignore[attr-defined]
    tolerant.load = lambda file, **kwargs: Unpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    return tolerant


def _load_checkpoint(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # refused: the file pickles more than tensors (the repo's trainer pickles its logger)
    except Exception as exc:
        raise _corrupt(path, exc) from None
    # Full unpickling can run code from the file; we do it only for the file the user named.
    missing: list[str] = []
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False,
                                pickle_module=_tolerant_pickle_module(missing))
    except Exception as exc:
        raise _corrupt(path, exc) from None
    skipped = f" (skipped unimportable {', '.join(sorted(set(missing)))})" if missing else ""
    logger.warning("%s pickles Python objects besides the weights%s: loaded it with weights_only=False "
                   "because you named this file; re-save it once as a plain state_dict to load it safely: "
                   "python -c \"from segmenter.model.checkpoint import save_state_dict; "
                   "save_state_dict('%s', 'ICNet_ResNet18.sd.pth')\"", path, skipped, path)
    return checkpoint


def save_state_dict(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Re-save a checkpoint's weights as a plain state_dict, which loads with weights_only=True."""
    torch.save(read_state_dict(Path(src)), Path(dst))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _corrupt(path: Path, exc: BaseException) -> Exception:
    # first sentence only: torch's zip errors go on about miniz internals
    reason = first_line(exc).split(". ")[0] if not isinstance(exc, EOFError) else "unexpected end of file"
    return ModelError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {reason[:160]}): "
                        f"the file looks truncated or corrupt, download ICNet_ResNet18.pth again")


def check_state_dict(network: nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise one ModelError naming missing, unexpected and wrong-shaped keys, if there are any."""
    expected = network.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [f"{k} {list(state_dict[k].shape)} != {list(v.shape)}" for k, v in expected.items()
                   if k in state_dict and state_dict[k].shape != v.shape]
    problems = [f"{label} {len(keys)} key(s): {_some(keys)}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape in", wrong_shape)) if keys]
    if problems:
        raise ModelError(f"{path} does not match icnet-resnet18 (ICNet, ResNet18 backbone): {'; '.join(problems)}; "
                           f"give --weights the ICNet_ResNet18.pth of Human-Segmentation-PyTorch")


def _some(keys: list[str]) -> str:
    shown = ", ".join(keys[:KEY_LIST_LIMIT])
    return shown + (f" (+{len(keys) - KEY_LIST_LIMIT} more)" if len(keys) > KEY_LIST_LIMIT else "")
