"""Whole Phenaki models through the stand-in Hub: push, load back identically, pinned revisions, a T5 text
encoder named in the config, and the text encoders themselves."""

import subprocess
import sys

import pytest
import torch
from conftest import tiny_phenaki
from hub_server import TOKEN, HubServer, hub_environment
from huggingface_hub import constants

from phenaki import Phenaki
from phenaki.models.text import ByteTextEncoder, build_text_encoder
from phenaki.training.presets import preset

PROMPT = "a red circle moves left"
SAMPLE = dict(texts=PROMPT, num_frames=9, steps=3, critic_strength=0.5, seed=2)


@pytest.fixture
def hub(tmp_path):
    with HubServer(tmp_path / "server") as server, hub_environment(server, tmp_path / "hf_home"):
        yield server


def test_pushed_model_loads_back_identically_and_pins(hub, tiny_model):
    tiny_model.push_to_hub("org/phenaki-tiny", token=TOKEN)
    first = hub.head("org/phenaki-tiny")
    card = hub.files("org/phenaki-tiny")["README.md"].decode()
    assert "pipeline_tag: text-to-video" in card and "library_name: phenaki" in card

    loaded = Phenaki.from_pretrained("org/phenaki-tiny")
    assert torch.equal(loaded.sample(**SAMPLE), tiny_model.sample(**SAMPLE))

    tiny_phenaki(seed=1).push_to_hub("org/phenaki-tiny", token=TOKEN)  # main moves on
    assert not torch.equal(Phenaki.from_pretrained("org/phenaki-tiny").sample(**SAMPLE), tiny_model.sample(**SAMPLE))
    pinned = Phenaki.from_pretrained("org/phenaki-tiny", revision=first)
    assert torch.equal(pinned.sample(**SAMPLE), tiny_model.sample(**SAMPLE))

    hub.stop()  # a pinned commit, once cached, needs no network
    constants.HF_HUB_OFFLINE = True
    offline = Phenaki.from_pretrained("org/phenaki-tiny", revision=first)
    assert torch.equal(offline.sample(**SAMPLE), tiny_model.sample(**SAMPLE))


def test_weights_that_do_not_match_the_config_on_the_hub(hub, tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "model")
    files = {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()}
    files["config.json"] = files["config.json"].replace(b'"depth": 2', b'"depth": 3', 1)
    hub.commit("org/mismatch", files)
    with pytest.raises(ValueError, match="do not match its config.json"):
        Phenaki.from_pretrained("org/mismatch")


def test_a_t5_text_encoder_named_in_the_config_is_fetched_through_transformers(hub, tmp_path):
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    tokenizer = ByT5Tokenizer()
    torch.manual_seed(0)
    T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    ).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    hub.commit_folder("org/tiny-t5", tmp_path / "t5")

    config = preset("tiny")
    config["text_encoder"] = dict(kind="t5", name="org/tiny-t5")
    model = Phenaki.from_config(config).eval()
    model.save_pretrained(tmp_path / "phenaki")
    assert not any(k.startswith("text_encoder.") for k in _saved_keys(tmp_path / "phenaki"))  # not ours to save

    loaded = Phenaki.from_pretrained(tmp_path / "phenaki")
    assert loaded.config["text_encoder"]["name"] == "org/tiny-t5"
    assert torch.equal(loaded.sample(**SAMPLE), model.sample(**SAMPLE))
    assert any("/org/tiny-t5/resolve/" in path for _, path in hub.requests)


def _saved_keys(folder):
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return list(f.keys())


def test_a_missing_t5_gets_a_clear_error(hub):
    constants.HF_HUB_OFFLINE = True
    with pytest.raises(ValueError, match="google/t5-v1_1-base"):
        build_text_encoder(dict(kind="t5", name="google/t5-v1_1-base"))


def test_byte_encoder_needs_no_files_and_masks_padding():
    encoder = ByteTextEncoder(dim=32, depth=1, heads=2, dim_head=16).eval()
    with torch.no_grad():
        embeddings, mask = encoder(["a red circle moves left", "hi"])
        alone, _ = encoder(["hi"])
    assert embeddings.shape[:2] == mask.shape and embeddings.shape[-1] == 32
    assert mask[0].all() and mask[1].sum() == 3  # 'h', 'i' and the end token
    assert torch.allclose(embeddings[1, :3], alone[0], atol=1e-5)  # padding changes nothing
    with pytest.raises(ValueError, match="kind must be 'byte' or 't5'"):
        build_text_encoder(dict(kind="clip"))


def test_no_network_and_no_t5_at_import_or_construction():
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network access')\n"
        "socket.socket.connect = refuse\n"
        "import sys, phenaki\n"
        "assert 'phenaki.hub' not in sys.modules\n"
        "from phenaki.training.presets import preset\n"
        "model = phenaki.Phenaki.from_config(preset('tiny')).eval()\n"
        "model.sample(texts='a red circle', num_frames=5, steps=2, seed=0)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_the_demo_loads_its_model_from_the_hub_by_environment(hub, tiny_model):
    from phenaki.demo import startup

    tiny_model.push_to_hub("org/phenaki-demo", token=TOKEN)
    pinned = hub.head("org/phenaki-demo")
    tiny_phenaki(seed=1).push_to_hub("org/phenaki-demo", token=TOKEN)
    name, revision = startup.model_source({"PHENAKI_MODEL": "org/phenaki-demo", "PHENAKI_REVISION": pinned})
    model = startup.load_model(name, revision, "cpu", default="weights")
    assert torch.equal(model.sample(**SAMPLE), tiny_model.sample(**SAMPLE))
    with pytest.raises(startup.StartupError, match="(?s)org/no-such-model.*was not found.*PHENAKI_MODEL"):
        startup.load_model("org/no-such-model", None, "cpu", default="weights")
