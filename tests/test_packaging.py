"""The package as people install it: pyproject.toml agrees with requirements*.txt (which Spaces and scripts/setup.sh
install from), and a built copy, installed away from the source tree, imports and runs its `phenaki` command."""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SUBPACKAGES = ["phenaki.models", "phenaki.training", "phenaki.shapes", "phenaki.demo"]


def requirements(path: Path) -> dict[str, Requirement]:
    """The requirement lines of a requirements file by package name (comments and `-r` includes left out)."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    found = [Requirement(line) for line in lines if line and not line.startswith("-")]
    return {canonicalize_name(r.name): r for r in found}


def by_name(specs: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, specs)}


def compatible(declared: Requirement, pinned: Requirement) -> bool:
    """The same bounds, or a requirements-file pin (==) that the declared range admits (torch: a pin for Spaces,
    a range for library users)."""
    if declared.specifier == pinned.specifier:
        return True
    exact = [s.version for s in pinned.specifier if s.operator == "=="]
    return len(pinned.specifier) == 1 and bool(exact) and declared.specifier.contains(exact[0], prereleases=True)


def check_agree(declared: dict[str, Requirement], listed: dict[str, Requirement], what: str) -> None:
    missing = sorted(set(declared) - set(listed))
    assert not missing, f"{what}: in pyproject.toml but not in the requirements file: {missing}"
    extra = sorted(set(listed) - set(declared))
    assert not extra, f"{what}: in the requirements file but not in pyproject.toml: {extra}"
    differ = [
        f"{declared[n]} vs {listed[n]}"
        for n in sorted(declared)
        if not compatible(declared[n], listed[n]) or declared[n].extras != listed[n].extras
    ]
    assert not differ, f"{what}: the bounds or extras differ (pyproject.toml vs requirements file): {differ}"


def test_requirements_txt_agrees_with_the_dependencies_and_the_demo_extra():
    project = PYPROJECT["project"]
    declared = {**by_name(project["dependencies"]), **by_name(project["optional-dependencies"]["demo"])}
    check_agree(declared, requirements(ROOT / "requirements.txt"), "requirements.txt")


def test_requirements_dev_txt_agrees_with_the_dev_extra():
    dev = by_name(PYPROJECT["project"]["optional-dependencies"]["dev"])
    check_agree(dev, requirements(ROOT / "requirements-dev.txt"), "requirements-dev.txt")


def test_torch_is_a_range_that_admits_the_pinned_release():
    torch = by_name(PYPROJECT["project"]["dependencies"])["torch"]
    assert not any(s.operator == "==" for s in torch.specifier), "library users bring their own torch: no pin"
    pinned = next(iter(requirements(ROOT / "requirements.txt")["torch"].specifier))
    assert pinned.operator == "==" and torch.specifier.contains(pinned.version)  # the Space's release is included


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package built from a copy of the sources (so nothing, build/ or *.egg-info, is written into the tree)
    and installed with pip into a folder of its own; its console script is in bin/."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "phenaki", source / "phenaki", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = work / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-cache-dir"]
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]  # the environment's setuptools, nothing fetched
    result = subprocess.run([*pip, *offline, "--target", target, source], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return target


def run_installed(installed: Path, tmp_path: Path, *command: str) -> subprocess.CompletedProcess:
    """A command from another folder, with only the installed copy and the environment's dependencies importable."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(installed), sysconfig.get_paths()["purelib"]]),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_the_installed_package_imports_every_subpackage(installed, tmp_path):
    script = "import phenaki, " + ", ".join(SUBPACKAGES) + "\nfrom phenaki import Phenaki\nprint(phenaki.__file__)"
    result = run_installed(installed, tmp_path, sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Path(result.stdout.strip()).is_relative_to(installed)  # not the source tree


def test_the_installed_command_runs(installed, tmp_path, tiny_model_dir):
    phenaki = str(installed / "bin" / "phenaki")
    result = run_installed(installed, tmp_path, phenaki, "--help")
    assert result.returncode == 0 and "generate" in result.stdout and "train" in result.stdout, result.stderr
    # installed away from a checkout, there is no bundled weights/ folder to default to
    result = run_installed(installed, tmp_path, phenaki, "generate", "a red circle moves left", "--out", "clip.gif")
    assert result.returncode == 1 and result.stderr.strip().startswith("phenaki generate: error: --model is needed")
    options = ["--seconds", "1", "--steps", "2", "--seed", "1", "--scale", "1", "--model", str(tiny_model_dir)]
    result = run_installed(installed, tmp_path, phenaki, "generate", "a red circle", *options, "--out", "clip.gif")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "seed 1 " in result.stdout and (tmp_path / "clip.gif").is_file()
