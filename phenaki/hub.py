"""Loading Phenaki models from local folders or the Hugging Face Hub, and publishing them.

A saved model is a folder with ``config.json``, ``model.safetensors`` and ``README.md`` (the model card). This
module finds such a folder (``resolve_model_dir``), checks that its weights file is whole (``check_safetensors``),
writes the model card (``write_model_card``), uploads a model (``push_to_hub``) and loads the T5 text encoder a
config names (``load_t5_encoder``). Downloads go through ``huggingface_hub``'s cache, so ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_TOKEN`` work as everywhere else. Nothing touches the
network at import.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.utils import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    validate_repo_id,
)

__all__ = [
    "HubError",
    "ModelLoadError",
    "check_safetensors",
    "resolve_model_dir",
    "push_to_hub",
    "load_t5_encoder",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MODEL_CARD_NAME",
]

# the names phenaki.serialization writes; spelled here too because this module imports nothing from phenaki
# (it loads on its own, without torch: the Hub tests run it in a bare subprocess)
CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME = "config.json", "model.safetensors", "README.md"
ALLOW_PATTERNS = [CONFIG_NAME, "*.safetensors", MODEL_CARD_NAME]


def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport-level errors of the HTTP client huggingface_hub uses (httpx2, httpx or requests by version)."""
    errors: list[type[BaseException]] = [OSError]  # requests' errors, connection errors, size mismatches
    for module in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


class HubError(ValueError):
    """A model could not be found, downloaded, validated or uploaded; the message says which and why."""


class ModelLoadError(HubError):
    """A model folder or Hub repo cannot be loaded: missing, unreachable, unauthorised, incomplete or corrupt."""


# --------------------------------------------------------------------------------------------------- validation
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}


def check_safetensors(path: str | os.PathLike) -> dict:
    """Check that a .safetensors file is whole: its header parses and declares exactly the bytes the file holds.

    Returns the parsed header ({name: {"dtype", "shape", "data_offsets"}}, plus "__metadata__" if present).
    Raises `ModelLoadError` naming the file if it is truncated, padded or not a safetensors file at all.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ModelLoadError(f"{path} is not a safetensors file: only {size} bytes long (truncated?)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8 or header_len > 100_000_000:
            raise ModelLoadError(
                f"{path} is truncated or corrupt: its header claims {header_len} bytes but the file has {size} bytes"
            )
        try:
            header = json.loads(f.read(header_len))
            assert isinstance(header, dict)
        except (ValueError, AssertionError):
            raise ModelLoadError(f"{path} is corrupt: its safetensors header is not a JSON object") from None
    data_size, end = size - 8 - header_len, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
            numel = 1
            for dim in info["shape"]:
                numel *= dim
        except (KeyError, TypeError, ValueError):
            raise ModelLoadError(f"{path} is corrupt: bad header entry for tensor {name!r}") from None
        nbytes = _DTYPE_BYTES.get(info.get("dtype"))
        if not 0 <= begin <= stop or (nbytes is not None and stop - begin != numel * nbytes):
            raise ModelLoadError(f"{path} is corrupt: tensor {name!r} has inconsistent offsets {begin}..{stop}")
        end = max(end, stop)
    if end != data_size:
        raise ModelLoadError(
            f"{path} is truncated or corrupt: its header declares {end} bytes of tensor data "
            f"but the file holds {data_size}"
        )
    return header


def _validate_folder(folder: Path, what: str, hint: str = "") -> Path:
    """Check that `folder` holds a loadable model (config.json, whole model.safetensors); return it."""
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).is_file()]
    if missing:
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise ModelLoadError(
            f"{what} is not a Phenaki model: it has no {' or '.join(missing)} "
            f"(found: {', '.join(present) or 'nothing'}){hint}"
        )
    try:
        json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except ValueError as e:
        raise ModelLoadError(f"{what}: {CONFIG_NAME} is not valid JSON ({e})") from e
    try:
        check_safetensors(folder / WEIGHTS_NAME)
    except ModelLoadError as e:
        raise ModelLoadError(f"{what}: {e}{hint}") from e
    return folder


# ------------------------------------------------------------------------------------------------------ loading
def _is_repo_id(name: str) -> bool:
    if name.count("/") != 1 or name.startswith((".", "~")) or "\\" in name:
        return False
    try:
        validate_repo_id(name)
        return True
    except HFValidationError:
        return False


def resolve_model_dir(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """Return a local folder holding a loadable model (``config.json`` + a whole ``model.safetensors``).

    `name_or_path` is a local folder (returned as is after checking it) or a Hub repo id ``owner/name``,
    downloaded with `huggingface_hub.snapshot_download` into the standard cache (or `cache_dir`). `revision` is a
    branch, tag or commit sha (a cached commit sha needs no network at all); `token` is passed through for private
    or gated repos.
    With `local_files_only` or ``HF_HUB_OFFLINE=1`` only the cache is used. Every failure raises `ModelLoadError`
    (a `ValueError`) that names the model and says what is wrong.
    """
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return _validate_folder(path, f"Local folder {name!r}")
    if path.exists():
        raise ModelLoadError(
            f"{name!r} is a file, not a model folder (expected a folder with {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}, or a Hub repo id 'owner/name')"
        )
    if not _is_repo_id(name):
        raise ModelLoadError(f"{name!r} is neither an existing local folder nor a valid Hub repo id ('owner/name')")
    offline = bool(local_files_only) or constants.HF_HUB_OFFLINE
    what = f"Hub repo {name!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        folder = snapshot_download(
            name,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            local_files_only=offline,
            allow_patterns=ALLOW_PATTERNS,
        )
    except _network_errors() as e:
        raise ModelLoadError(_explain(e, name, what, revision, token, offline)) from e
    hint = " (if an earlier download was interrupted, retry online)" if offline else ""
    return _validate_folder(Path(folder), what, hint)


def _explain(e: BaseException, name: str, what: str, revision: str | None, token, offline: bool) -> str:
    """A message for a failed snapshot_download, most specific cause first."""
    status = getattr(getattr(e, "response", None), "status_code", None)
    login = "pass token=... (or set HF_TOKEN, or run `hf auth login`)"
    if type(e).__name__ == "IncompleteSnapshotError":
        why = (
            "downloads are disabled (HF_HUB_OFFLINE=1 or local_files_only=True)"
            if offline
            else f"the Hub ({constants.ENDPOINT}) could not be reached"
        )
        return (
            f"The cached copy of {what} is incomplete (an earlier download did not finish) and {why}; "
            "retry online to complete it"
        )
    if offline and isinstance(e, LocalEntryNotFoundError):
        return (
            f"{what} is not in the local cache ({constants.HF_HUB_CACHE}) and downloads are disabled "
            "(HF_HUB_OFFLINE=1 or local_files_only=True); download it once online first"
        )
    if isinstance(e, RevisionNotFoundError):
        return f"Revision {revision!r} does not exist in Hub repo {name!r}"
    if isinstance(e, GatedRepoError):
        return f"Hub repo {name!r} is gated: accept its conditions on the Hub and use a token that has access" + (
            " (the token given has none)" if token else f": {login}"
        )
    if isinstance(e, RepositoryNotFoundError):
        if status == 401 and not token:
            return (
                f"{what} was not found on the Hub ({constants.ENDPOINT}) and there is no local folder of that "
                f"name; if the repo is private or gated, a token is needed: {login}"
            )
        return f"{what} does not exist on the Hub ({constants.ENDPOINT}), or the token given cannot access it"
    if isinstance(e, HfHubHTTPError) and status in (401, 403):
        return f"Access to {what} was refused (HTTP {status}): a valid token with read access is needed: {login}"
    if isinstance(e, EntryNotFoundError) and not isinstance(e, LocalEntryNotFoundError):
        return f"{what}: a file listed by the Hub could not be found ({e})"
    if isinstance(e, LocalEntryNotFoundError):  # no connection (or the Hub is down) and nothing cached
        cause = e.__cause__ or e
        return (
            f"Could not reach the Hub ({constants.ENDPOINT}) to download {what}, and it is not in the local "
            f"cache ({type(cause).__name__}: {(str(cause).splitlines() or [''])[0]})"
        )
    if isinstance(e, (OfflineModeIsEnabled, HfHubHTTPError)):
        return f"{what} could not be fetched: {e}"
    return (
        f"Downloading {what} from {constants.ENDPOINT} failed ({type(e).__name__}: {e}); no partial file was "
        "kept in the cache, retry when the connection is back"
    )


# ------------------------------------------------------------------------------------------------------ uploading
def push_to_hub(
    save_fn: Callable[[str], object],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload Phenaki model",
    create_pr: bool = False,
) -> str:
    """Save a model with `save_fn(folder)` into a temporary folder and upload it to `repo_id` in one commit.

    Creates the repo if needed (``exist_ok``). Returns the commit URL (the pull request URL with `create_pr`).
    """
    from huggingface_hub import CommitOperationAdd

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="phenaki-push-") as tmp:
        save_fn(tmp)
        _validate_folder(Path(tmp), "The folder written by save_fn")
        files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
        operations = [
            CommitOperationAdd(path_in_repo=p.relative_to(tmp).as_posix(), path_or_fileobj=str(p)) for p in files
        ]
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.create_commit(
                repo_id, operations=operations, commit_message=commit_message, revision=revision, create_pr=create_pr
            )
        except _network_errors() as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            need = " (a token with write access is needed: pass token=... or run `hf auth login`)"
            raise HubError(
                f"Could not push to Hub repo {repo_id!r} at {constants.ENDPOINT}: "
                f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}" + (need if status in (401, 403) else "")
            ) from e
    return (info.pr_url or info.commit_url) if create_pr else info.commit_url


# -------------------------------------------------------------------------------------------------- text encoder
def load_t5_encoder(
    name: str,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
):
    """Load ``(tokenizer, T5EncoderModel)`` for the T5 checkpoint `name` (Hub id or folder) through transformers."""
    from transformers import AutoTokenizer, T5EncoderModel

    kwargs = {
        "revision": revision,
        "token": token,
        "cache_dir": cache_dir,
        "local_files_only": bool(local_files_only) or constants.HF_HUB_OFFLINE,
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return AutoTokenizer.from_pretrained(name, **kwargs), T5EncoderModel.from_pretrained(name, **kwargs)
    except OSError as e:
        raise ModelLoadError(f"Could not load the T5 text encoder {name!r}: {e}") from e
