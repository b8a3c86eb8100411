"""Shared fixtures. Environment first: huggingface_hub and gradio read these at import time."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.pop("HF_TOKEN", None)

import pytest  # noqa: E402
import torch  # noqa: E402

from phenaki import Phenaki  # noqa: E402
from phenaki.training.presets import preset  # noqa: E402

# one thread: the app servers and trainers the tests start run beside this process on 2 cores, and
# oversubscribed OpenMP threads spin instead of working (measured: 60x slower sampling under load)
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "bundled_model: serves the bundled weights/ model (every other demo test "
                                       "serves a tiny random one)")


def tiny_phenaki(seed: int = 0, critic: bool = True, **overrides) -> Phenaki:
    """A randomly initialised tiny model (32x32 frames, 17-frame windows): real code, test-sized."""
    torch.manual_seed(seed)
    config = preset("tiny")
    if not critic:
        config["critic"] = None
    config.update(overrides)
    return Phenaki.from_config(config).eval()


def randomised(module: torch.nn.Module, seed: int = 0, scale: float = 0.5) -> torch.nn.Module:
    """Random weights everywhere (null keys/values and norms too), so that no path agrees by accident."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim == 1:  # norms around 1, biases around 0
                parameter.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * noise)
            else:
                parameter.copy_(noise * scale / parameter.shape[-1] ** 0.5)
    return module.eval()


@pytest.fixture(scope="session")
def tiny_model() -> Phenaki:
    return tiny_phenaki()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("tiny_model")
    tiny_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server():
    """The app on a free local port (shared by the modules that drive it), checked after each module's tests:
    still alive, and no traceback in its log."""
    from app_server import shared_server

    server = shared_server()
    yield server
    assert server.alive(), server.log()
    assert "Traceback" not in server.log(), server.log()  # bad input is a message, not a crash
