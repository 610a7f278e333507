"""Shared fixtures: a small seeded synthetic dataset, marker handling."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    import torch

    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow to run")
    skip_gpu = pytest.mark.skip(reason="needs CUDA, none available")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """6 embryos x 3 frames of 192x192, seed 7 (about a second to render)."""
    from cs_features.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("tiny_synth")
    generate_dataset(out, n_embryos=6, seed=7, config=SynthConfig(image_size=192, frames_per_embryo=3), workers=1)
    return out
