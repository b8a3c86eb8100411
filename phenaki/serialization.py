"""A model on disk: weights in one safetensors file, checked key by key and shape by shape against the model (no
pickle); its `config.json` (and `check_config_version`: whether this code reads its format); the `training.json`
record a trainer leaves beside it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

CONFIG_NAME, WEIGHTS_NAME, TRAINING_RECORD_NAME = "config.json", "model.safetensors", "training.json"
CONFIG_VERSION = 1  # the format of config.json; a config without "version" is the first
# Optional keys added since stay in version 1 when earlier readers load the model without them: `vocabulary` (the
# training captions' words, phenaki/vocabulary.py) is one; `from_config` has always read only the keys it knows.


def _unique_state(model: nn.Module, skip_prefixes: tuple[str, ...]) -> tuple[dict, dict]:
    """The tensors to save, one per storage (tied weights once), and a map alias -> saved key."""
    state, aliases, seen = {}, {}, {}
    for key, tensor in model.state_dict().items():
        if key.startswith(skip_prefixes):
            continue
        ptr = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if ptr in seen:
            aliases[key] = seen[ptr]
        else:
            seen[ptr] = key
            state[key] = tensor
    return state, aliases


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Writes a safetensors file atomically (a crash mid-write never leaves a truncated file behind), with the
    permissions of any new file: safetensors itself writes 0600, which another user (a server, a Space) can't read."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    tmp.touch()  # created under the process's umask
    mode = tmp.stat().st_mode & 0o777
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})
    tmp.chmod(mode)
    tmp.replace(path)


def save_weights(model: nn.Module, path: Path, skip_prefixes: tuple[str, ...] = ()) -> None:
    save_tensors(_unique_state(model, skip_prefixes)[0], path)


def load_weights(model: nn.Module, path: Path, skip_prefixes: tuple[str, ...] = ()) -> None:
    """Loads `path` into `model`, raising ValueError that names the file if anything does not match."""
    expected, aliases = _unique_state(model, skip_prefixes)
    try:
        with safe_open(str(path), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            missing = sorted(set(expected) - set(found))
            unexpected = sorted(set(found) - set(expected))
            wrong = sorted(k for k in set(found) & set(expected) if found[k] != tuple(expected[k].shape))
            if missing or unexpected or wrong:
                details = [
                    f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                    f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                    "shape mismatch: "
                    + ", ".join(
                        f"{k} is {found[k]} in the file but {tuple(expected[k].shape)} in the config" for k in wrong[:3]
                    )
                    if wrong
                    else "",
                ]
                raise ValueError(
                    f"weights in {path} do not match its config.json: " + "; ".join(d for d in details if d)
                )
            state = {k: f.get_tensor(k) for k in found}
    except SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {error}") from error
    state.update({alias: state[key] for alias, key in aliases.items()})
    with torch.no_grad():
        model.load_state_dict(state, strict=False, assign=False)


def write_config(config: dict, folder: Path) -> None:
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def read_config(folder: str | Path, *, tokenizer_only: bool = False) -> dict:
    """The `config.json` of a model folder: a whole model's ('cvivit' and 'maskgit' sections), or with
    `tokenizer_only` any with a 'cvivit' section (a tokenizer run's `final/` folder, or a whole model)."""
    path = Path(folder) / CONFIG_NAME
    config = _read_json(path, f"{folder} has no {CONFIG_NAME}")
    if tokenizer_only and not (isinstance(config, dict) and "cvivit" in config):
        raise ValueError(f"{path} is not a tokenizer config (no 'cvivit' section)")
    if not tokenizer_only and not (isinstance(config, dict) and "cvivit" in config and "maskgit" in config):
        raise ValueError(f"{path} is not a Phenaki config (needs 'cvivit' and 'maskgit' sections)")
    return config


def check_config_version(config: dict) -> None:
    """ValueError unless this code reads the config's format (a missing version is 1)."""
    version = config.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"the config's version must be a positive integer, got {version!r}")
    if version > CONFIG_VERSION:
        raise ValueError(
            f"this model's config is format version {version}, newer than version {CONFIG_VERSION} "
            f"that this phenaki reads: upgrade phenaki (pip install -U phenaki) to load it"
        )


def read_training_record(folder: str | Path) -> dict | None:
    """The `training.json` record that a trainer left in `folder` (the run's arguments, time and hardware), or None
    where there is none."""
    path = Path(folder) / TRAINING_RECORD_NAME
    return _read_json(path, "") if path.exists() else None


def _read_json(path: Path, missing: str):
    """The JSON value in `path`; ValueError `missing` if there is no such file, or naming the file if it is not
    JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(missing or f"{path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
