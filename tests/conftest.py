"""Shared fixtures: a small seeded synthetic dataset, one read-only store built from it, marker handling."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def chromium_executable() -> str | None:
    """Path of an installed Chromium (on PATH or in Playwright's browser cache), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    for pattern in ("chromium-*/chrome-linux*/chrome", "chromium_headless_shell-*/chrome-linux*/headless_shell"):
        found = sorted(cache.glob(pattern))
        if found:
            return str(found[-1])
    return None


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow to run")
    if any("gpu" in item.keywords for item in items):
        import torch  # only when a gpu test was collected: keeps `pytest tests/test_x.py` start-up fast

        cuda = torch.cuda.is_available()
    if any("browser" in item.keywords for item in items):
        chromium = chromium_executable()
        skip_browser = pytest.mark.skip(reason=f"browser: no Chromium installed (looked for {', '.join(CHROMIUM_NAMES)} "
                                               "on PATH and in the Playwright cache); install one to run this test")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA, none available"))
        if "browser" in item.keywords and chromium is None:
            item.add_marker(skip_browser)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """6 embryos x 3 frames of 192x192, seed 7 (about a second to render)."""
    from cs_features.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("tiny_synth")
    generate_dataset(out, n_embryos=6, seed=7, config=SynthConfig(image_size=192, frames_per_embryo=3), workers=1)
    return out
