"""Shared fixtures. Environment first: huggingface_hub and gradio read these at import time."""

import functools
import os
import shutil

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


# ---- markers: every test gets exactly one category (declared in pyproject.toml, with --strict-markers) ----------

CATEGORIES = ("unit", "server", "browser", "gpu", "multiprocess")
BY_MODULE = {"test_browser.py": "browser", "test_gpu_bench.py": "gpu"}
COLLECTED = pytest.StashKey[list]()  # every test collected, before -m/-k deselect any (tests/test_markers.py)


def category_of(item) -> str:
    """A test's category when it has none by hand: by module (browser, gpu), else `server` when it uses the shared
    app server (the `server` fixture), else `unit`. A test that starts its own `python app.py` is marked by hand."""
    if item.path.name in BY_MODULE:
        return BY_MODULE[item.path.name]
    return "server" if "server" in getattr(item, "fixturenames", ()) else "unit"


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook, which deselects by -m
def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(name) for name in CATEGORIES):
            item.add_marker(category_of(item))
    config.stash[COLLECTED] = list(items)


# ---- tools the server and browser tests need: missing ones fail those tests, not pass them silently ------------

ALLOW_MISSING = "PHENAKI_TESTS_ALLOW_MISSING_TOOLS"
NEEDS = {"server": ("ffmpeg", "ffprobe"), "browser": ("ffmpeg", "ffprobe", "chromium")}
DEBIAN_PACKAGE = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "chromium": "chromium"}


@functools.cache
def tool_path(tool: str) -> str | None:
    if tool == "chromium":  # the browser tests launch this file (PHENAKI_TEST_CHROMIUM to use another)
        from app_server import CHROMIUM

        return CHROMIUM if os.access(CHROMIUM, os.X_OK) else None
    return shutil.which(tool)


def pytest_report_header(config):
    return "tools: " + ", ".join(f"{tool} {tool_path(tool) or 'MISSING'}" for tool in DEBIAN_PACKAGE)


def pytest_runtest_setup(item):
    """Before any fixture starts a server: a server or browser test whose tools are missing fails, naming the Debian
    package (`bash scripts/setup.sh --dev` installs them), or with PHENAKI_TESTS_ALLOW_MISSING_TOOLS=1 is skipped."""
    needed = {tool for name, tools in NEEDS.items() if item.get_closest_marker(name) for tool in tools}
    missing = sorted(tool for tool in needed if tool_path(tool) is None)
    if missing:
        packages = " ".join(sorted({DEBIAN_PACKAGE[tool] for tool in missing}))
        message = (
            f"{', '.join(missing)} not found, which this test needs: install the Debian package(s) {packages} "
            f"(`bash scripts/setup.sh --dev` does, as root)"
        )
        if os.environ.get(ALLOW_MISSING) == "1":
            pytest.skip(f"{message}; skipped as {ALLOW_MISSING}=1 allows")
        pytest.fail(f"{message}, or set {ALLOW_MISSING}=1 to skip such tests", pytrace=False)


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
    assert server.crashes() == [], server.log()  # bad input is a message, not a crash
