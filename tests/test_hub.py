"""Tests for phenaki.hub against a stand-in Hub server (tests/hub_server.py); no internet needed."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, constants, file_download
from safetensors.torch import save as safetensors_bytes

from phenaki.hub import HubError, ModelLoadError, check_safetensors, load_t5_encoder, push_to_hub, resolve_model_dir
from phenaki.model_card import write_model_card

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import TOKEN, HubServer, hub_environment  # noqa: E402

CONFIG = {
    "version": 1,
    "frame_size": [64, 48],
    "fps": 8,
    "prime_frames": 5,
    "critic": None,
    "text_encoder": {"kind": "t5", "name": "org/tiny-t5", "max_length": 32},
    "cvivit": {"dim": 64, "codebook_size": 512, "fsq_levels": [8, 8]},
    "maskgit": {"dim": 128, "depth": 2},
}


def model_files(seed: int = 0, config: dict = CONFIG) -> dict[str, bytes]:
    torch.manual_seed(seed)
    weights = {"cvivit.proj.weight": torch.randn(16, 8), "maskgit.emb": torch.randn(32, 4).half()}
    return {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": safetensors_bytes(weights),
        "README.md": b"---\nlibrary_name: phenaki\n---\n\n# test model\n",
    }


def read_folder(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def hub(tmp_path):
    with HubServer(tmp_path / "server") as server, hub_environment(server, tmp_path / "hf_home"):
        yield server


@pytest.fixture
def offline(monkeypatch):
    """HF_HUB_OFFLINE=1 as huggingface_hub sees it (its constants are read from the environment at import)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


class _NoSleepTime:
    """Stands in for the `time` module inside huggingface_hub.file_download, so its retry back-off takes no time."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(_seconds):
        pass


# ---------------------------------------------------------------------------------------------------- local use
def test_check_safetensors_accepts_whole_files_and_rejects_damaged_ones(tmp_path):
    data = model_files()["model.safetensors"]
    good = tmp_path / "good.safetensors"
    good.write_bytes(data)
    assert set(check_safetensors(good)) >= {"cvivit.proj.weight", "maskgit.emb"}
    header_len = struct.unpack("<Q", data[:8])[0]
    damaged = {
        "truncated": data[:-1],
        "padded": data + b"\0",
        "tiny": data[:5],
        "no header": data[: 8 + header_len],
        "bad json": data[:8] + b"{" * header_len + data[8 + header_len :],
        "huge header": struct.pack("<Q", len(data)) + data[8:],
    }
    for label, content in damaged.items():
        bad = tmp_path / f"{label}.safetensors"
        bad.write_bytes(content)
        with pytest.raises(ModelLoadError, match="truncated|corrupt|not a safetensors") as info:
            check_safetensors(bad)
        assert str(bad) in str(info.value), label


def test_local_folder_is_returned_as_is_after_checking(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    for name, data in model_files().items():
        (folder / name).write_bytes(data)
    assert resolve_model_dir(folder) == folder
    assert resolve_model_dir(str(folder)) == folder

    (folder / "model.safetensors").write_bytes(model_files()["model.safetensors"][:-10])
    with pytest.raises(ModelLoadError, match="truncated"):
        resolve_model_dir(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"model'.*no model\.safetensors"):
        resolve_model_dir(folder)
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no config\.json or model\.safetensors"):
        resolve_model_dir(folder)
    with pytest.raises(ModelLoadError, match="is a file"):
        resolve_model_dir(folder / "README.md")

    monkeypatch.chdir(tmp_path)
    for bad in ["not a repo!", "./missing/model", "a/b/c", "owner/-bad-", "owner--x/name"]:
        with pytest.raises(ValueError, match="neither an existing local folder nor a valid Hub repo id") as info:
            resolve_model_dir(bad)
        assert repr(bad) in str(info.value)


# ----------------------------------------------------------------------------------------------------- download
def test_download_is_byte_identical_and_only_fetches_model_files(hub, tmp_path):
    files = model_files()
    hub.commit("org/model", {**files, "extra.bin": b"x" * 100, "notes.txt": "hi", "sub/other.safetensors": b"??"})
    folder = resolve_model_dir("org/model")
    assert folder.is_relative_to(tmp_path / "hf_home" / "hub")
    assert folder.name == hub.head("org/model")
    assert read_folder(folder) == files  # extra.bin and notes.txt are not downloaded

    elsewhere = resolve_model_dir("org/model", cache_dir=tmp_path / "own_cache")
    assert elsewhere.is_relative_to(tmp_path / "own_cache") and read_folder(elsewhere) == files


def test_pinned_revision_keeps_its_files_after_main_moves(hub):
    old, new = model_files(seed=1), model_files(seed=2)
    first = hub.commit("org/model", old)
    second = hub.commit("org/model", new)
    assert read_folder(resolve_model_dir("org/model", revision=first)) == old
    assert read_folder(resolve_model_dir("org/model")) == new
    hub.commit("org/model", model_files(seed=3))
    assert read_folder(resolve_model_dir("org/model", revision=first)) == old
    assert read_folder(resolve_model_dir("org/model", revision=second)) == new


def test_cached_pinned_revision_needs_no_network(hub, monkeypatch):
    files = model_files()
    sha = hub.commit("org/model", files)
    folder = resolve_model_dir("org/model", revision=sha)
    hub.commit("org/model", model_files(seed=5))  # main moves on; the pinned commit must not be refetched

    hub.requests.clear()
    assert resolve_model_dir("org/model", revision=sha) == folder  # online, but everything is cached
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve_model_dir("org/model", revision=sha) == folder
    assert resolve_model_dir("org/model", revision=sha, local_files_only=True) == folder
    assert hub.requests == []

    hub.stop()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert read_folder(resolve_model_dir("org/model", revision=sha)) == files
    with pytest.raises(ModelLoadError, match="Could not reach the Hub"):  # main was never fetched
        resolve_model_dir("org/model")


def test_offline_with_nothing_cached_names_the_repo(hub, offline):
    hub.commit("org/model", model_files())
    with pytest.raises(ModelLoadError, match=r"'org/model'.*not in the local cache.*HF_HUB_OFFLINE"):
        resolve_model_dir("org/model")
    assert hub.requests == []


def test_local_files_only_with_nothing_cached(hub):
    hub.commit("org/model", model_files())
    with pytest.raises(ModelLoadError, match=r"'org/model'.*not in the local cache"):
        resolve_model_dir("org/model", local_files_only=True)
    assert hub.requests == []


def test_unreachable_hub_with_nothing_cached(hub):
    hub.commit("org/model", model_files())
    hub.stop()
    with pytest.raises(ModelLoadError, match=r"Could not reach the Hub.*'org/model'.*not in the local cache"):
        resolve_model_dir("org/model")


def test_missing_repo_and_missing_revision(hub):
    hub.commit("org/model", model_files())
    with pytest.raises(ModelLoadError, match=r"'org/nope' was not found.*token is needed"):
        resolve_model_dir("org/nope")
    with pytest.raises(ModelLoadError, match=r"'org/nope' does not exist"):
        resolve_model_dir("org/nope", token=TOKEN)
    with pytest.raises(ModelLoadError, match=r"Revision 'v9' does not exist in Hub repo 'org/model'"):
        resolve_model_dir("org/model", revision="v9")
    with pytest.raises(ModelLoadError, match=r"Revision '0{40}' does not exist in Hub repo 'org/model'"):
        resolve_model_dir("org/model", revision="0" * 40)


def test_repo_without_config_or_without_weights(hub):
    files = model_files()
    hub.commit("org/no-config", {k: v for k, v in files.items() if k != "config.json"})
    hub.commit("org/no-weights", {k: v for k, v in files.items() if k != "model.safetensors"})
    hub.commit("org/other-weights", {"config.json": files["config.json"], "weights.bin": b"\0" * 16})
    with pytest.raises(ModelLoadError, match=r"Hub repo 'org/no-config' is not a Phenaki model: it has no config"):
        resolve_model_dir("org/no-config")
    with pytest.raises(ModelLoadError, match=r"'org/no-weights' .*no model\.safetensors \(found: README\.md, conf"):
        resolve_model_dir("org/no-weights")
    with pytest.raises(ModelLoadError, match=r"'org/other-weights' .*no model\.safetensors"):
        resolve_model_dir("org/other-weights")


def test_truncated_safetensors_in_repo(hub):
    files = model_files()
    hub.commit("org/broken", {**files, "model.safetensors": files["model.safetensors"][:-7]})
    with pytest.raises(ModelLoadError, match=r"Hub repo 'org/broken'.*model\.safetensors is truncated"):
        resolve_model_dir("org/broken")


def test_aborted_download_leaves_nothing_loadable(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(file_download, "time", _NoSleepTime())
    files = model_files()
    hub.commit("org/model", files)
    hub.truncate[("org/model", "model.safetensors")] = 100  # promise the whole file, send 100 bytes, hang up

    with pytest.raises(ModelLoadError, match=r"Downloading Hub repo 'org/model' .*failed"):
        resolve_model_dir("org/model")
    cache = tmp_path / "hf_home" / "hub"
    assert not list(cache.rglob("model.safetensors")) and not list(cache.rglob("*.incomplete"))
    gets = [p for m, p in hub.requests if m == "GET" and p.endswith("/model.safetensors")]
    assert len(gets) > 1  # huggingface_hub tried to resume with Range requests

    for kwargs in ({"local_files_only": True}, {}):  # cache only: must not return the half-downloaded snapshot
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", not kwargs)
        with pytest.raises(ModelLoadError, match=r"cached copy of Hub repo 'org/model' is incomplete"):
            resolve_model_dir("org/model", **kwargs)
    hub.stop()  # the Hub is unreachable: same answer
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ModelLoadError, match=r"cached copy of Hub repo 'org/model' is incomplete"):
        resolve_model_dir("org/model")

    hub.start()
    hub.truncate.clear()
    with hub_environment(hub, tmp_path / "hf_home"):  # the restarted server listens on a new port
        assert read_folder(resolve_model_dir("org/model")) == files


def test_resumed_download_completes(hub, monkeypatch):
    """A connection dropped once is resumed with a Range request and gives the exact file."""
    monkeypatch.setattr(file_download, "time", _NoSleepTime())
    files = model_files()
    hub.commit("org/model", files)
    hub.truncate[("org/model", "model.safetensors")] = 100
    weight_gets = []

    def heal_before_second_weights_get(method, path):
        if method == "GET" and path.endswith("/model.safetensors"):
            weight_gets.append(path)
            if len(weight_gets) == 2:
                hub.truncate.clear()

    hub.on_request = heal_before_second_weights_get
    assert read_folder(resolve_model_dir("org/model")) == files
    assert len(weight_gets) == 2


def test_private_and_gated_repos_need_a_token(hub):
    files = model_files()
    hub.create_repo("org/private", private=True)
    hub.commit("org/private", files)
    with pytest.raises(ModelLoadError, match=r"'org/private' was not found.*private or gated, a token is needed"):
        resolve_model_dir("org/private")
    with pytest.raises(ModelLoadError, match=r"'org/private'.*(refused|token)"):
        resolve_model_dir("org/private", token="hf_wrong")
    assert read_folder(resolve_model_dir("org/private", token=TOKEN)) == files

    hub.create_repo("org/gated", gated=True)
    hub.commit("org/gated", files)
    with pytest.raises(ModelLoadError, match=r"'org/gated' is gated.*token"):
        resolve_model_dir("org/gated")
    with pytest.raises(ModelLoadError, match=r"'org/gated' is gated.*the token given has none"):
        resolve_model_dir("org/gated", token=TOKEN)
    hub.repos["org/gated"].gated_tokens.add(TOKEN)
    assert read_folder(resolve_model_dir("org/gated", token=TOKEN)) == files


# ------------------------------------------------------------------------------------------------------- upload
def test_push_to_hub_round_trip(hub):
    files = model_files()

    def save(folder):
        for name, data in files.items():
            Path(folder, name).write_bytes(data)

    url = push_to_hub(save, "me/pushed", token=TOKEN)
    sha = hub.head("me/pushed")
    assert url == f"{hub.url}/me/pushed/commit/{sha}"
    assert {k: v for k, v in hub.files("me/pushed").items() if k != ".gitattributes"} == files
    assert read_folder(resolve_model_dir("me/pushed")) == files
    assert not hub.repos["me/pushed"].private

    files = model_files(seed=7)  # a second push: same repo (exist_ok), a new commit on main
    push_to_hub(save, "me/pushed", token=TOKEN, commit_message="v2")
    assert hub.head("me/pushed") != sha
    assert hub.files("me/pushed")["model.safetensors"] == files["model.safetensors"]
    assert read_folder(resolve_model_dir("me/pushed")) == files

    url = push_to_hub(save, "me/private", token=TOKEN, private=True)
    assert hub.repos["me/private"].private and url.endswith(hub.head("me/private"))
    with pytest.raises(ModelLoadError, match="token"):
        resolve_model_dir("me/private")
    assert read_folder(resolve_model_dir("me/private", token=TOKEN)) == files
    files = model_files(seed=8)  # (unchanged files would make an empty commit, which huggingface_hub skips)
    pr_url = push_to_hub(save, "me/private", token=TOKEN, create_pr=True)
    assert pr_url == f"{hub.url}/me/private/discussions/1"
    assert hub.files("me/private", "refs/pr/1")["model.safetensors"] == files["model.safetensors"]
    assert hub.files("me/private")["model.safetensors"] != files["model.safetensors"]  # main is untouched


def test_push_to_hub_errors(hub):
    def save(folder):
        for name, data in model_files().items():
            Path(folder, name).write_bytes(data)

    with pytest.raises(HubError, match=r"Could not push to Hub repo 'me/x'.*token with write access"):
        push_to_hub(save, "me/x")
    assert "me/x" not in hub.repos
    with pytest.raises(ModelLoadError, match=r"save_fn .*no model\.safetensors"):
        push_to_hub(lambda folder: Path(folder, "config.json").write_text("{}"), "me/x", token=TOKEN)
    assert "me/x" not in hub.repos


def test_model_card_has_hub_metadata_and_summary(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(model_files()["model.safetensors"])
    path = write_model_card(tmp_path, CONFIG)
    assert path == tmp_path / "README.md"
    assert path.read_text().startswith("---\n")
    card = ModelCard.load(path)
    assert card.data.library_name == "phenaki" and card.data.pipeline_tag == "text-to-video"
    assert card.data.license == "mit"
    assert {"text-to-video", "phenaki", "maskgit"} <= set(card.data.tags)
    facts = [
        "**Frame size:** 64×48",
        "**Frames per second:** 8",
        "t5 `org/tiny-t5`",
        "| `codebook_size` | `512` |",
        "| `fsq_levels` | `[8, 8]` |",
        "## Maskgit",
        "**Parameters:** 256 (cvivit 128, maskgit 128)",
        "from_pretrained",
    ]
    for fact in facts:
        assert fact in card.text, fact

    write_model_card(tmp_path, CONFIG, body="# Custom\n\nHello.")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.text.strip() == "# Custom\n\nHello." and card.data.pipeline_tag == "text-to-video"


# -------------------------------------------------------------------------------------------------- text encoder
def test_load_t5_encoder_through_the_server(hub, tmp_path, monkeypatch):
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    tokenizer = ByT5Tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    torch.manual_seed(0)
    T5EncoderModel(config).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    hub.commit_folder("org/tiny-t5", tmp_path / "t5")

    tok, encoder = load_t5_encoder("org/tiny-t5")
    ids = tok(["a red ball"], return_tensors="pt").input_ids
    with torch.no_grad():
        out = encoder(input_ids=ids).last_hidden_state
    assert out.shape == (1, ids.shape[1], 32)
    assert ("GET", f"/org/tiny-t5/resolve/{hub.head('org/tiny-t5')}/model.safetensors") in hub.requests

    hub.stop()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    tok2, encoder2 = load_t5_encoder("org/tiny-t5")  # from the cache
    with torch.no_grad():
        again = encoder2(input_ids=tok2(["a red ball"], return_tensors="pt").input_ids).last_hidden_state
    assert torch.equal(again, out)
    with pytest.raises(ModelLoadError, match="'org/missing-t5'"):
        load_t5_encoder("org/missing-t5")


# ------------------------------------------------------------------------------------- real environment variables
def test_environment_variables_set_before_import_are_honoured(hub, tmp_path):
    """Without any patching: HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE as a user would set them."""
    files = model_files()
    sha = hub.commit("org/model", files)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "env_home"), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1"
    )
    # load phenaki/hub.py alone: the package's __init__ imports the whole model library (torch), which is slow
    hub_file = str(Path(__file__).parents[1] / "phenaki" / "hub.py")
    script = (
        f"import importlib.util as u; spec = u.spec_from_file_location('hub', {hub_file!r});"
        " hub = u.module_from_spec(spec); spec.loader.exec_module(hub);"
        " print(hub.resolve_model_dir('org/model'))"
    )

    def run(**extra):
        return subprocess.run(
            [sys.executable, "-c", script], env={**env, **extra}, capture_output=True, text=True, timeout=120
        )

    offline = run(HF_HUB_OFFLINE="1")
    assert offline.returncode != 0 and "not in the local cache" in offline.stderr
    online = run()
    assert online.returncode == 0, online.stderr
    folder = Path(online.stdout.strip())
    assert folder == tmp_path / "env_home" / "hub" / "models--org--model" / "snapshots" / sha
    assert read_folder(folder) == files
    hub.requests.clear()
    again = run(HF_HUB_OFFLINE="1")
    assert again.returncode == 0 and Path(again.stdout.strip()) == folder and hub.requests == []
