"""Shared fixtures: a small seeded synthetic dataset, one read-only store built from it, marker handling."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest


@contextlib.contextmanager
def local_s3(bucket: str = "csf"):
    """A local S3-compatible server (moto) with one bucket; yields a store's storage options.

    Skips the test where moto is missing or no loopback server can start (e.g. a sandbox without networking).
    """
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - moto is a test dependency
        pytest.skip(f"moto is not installed ({exc}); cannot start a local S3-compatible server")
    try:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        server.start()
    except Exception as exc:  # pragma: no cover - e.g. no loopback networking in a sandbox
        pytest.skip(f"could not start a local S3-compatible server: {exc}")
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    try:
        yield {"aws_endpoint": url, "aws_access_key_id": "test", "aws_secret_access_key": "test",
               "aws_region": "us-east-1", "allow_http": "true"}
    finally:
        server.stop()


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
        looked_for = ", ".join(CHROMIUM_NAMES)
        skip_browser = pytest.mark.skip(reason=f"browser: no Chromium installed (looked for {looked_for} on PATH "
                                               "and in the Playwright cache); install one to run this test")
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


def _files(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="session")
def tiny_store(tiny_dataset, tmp_path_factory):
    """``tiny_dataset`` ingested once (classic encoder, ss-single + filament proposals, at most 80 per frame).

    Shared by every module that only reads a store: a test that writes (tags, restores, index builds,
    re-ingests, added rows) copies it first (``shutil.copytree(tiny_store, tmp_path / "db")``). The store's
    files are compared at the end of the session, so a write slipped into a reading test fails loudly.
    """
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings

    path = tmp_path_factory.mktemp("tiny_store") / "db"
    settings = StoreSettings(proposals=ProposalConfig(method="ss-single,filament", max_proposals=80))
    ingest(tiny_dataset, path, IngestConfig(workers=1, settings=settings))
    before = _files(path)
    yield path
    after = _files(path)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, (f"a test wrote to the shared read-only tiny_store ({len(changed)} files changed: "
                         f"{changed[:5]}); copy it to tmp_path before writing")
