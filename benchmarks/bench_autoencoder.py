"""Benchmark: autoencoder training and scoring throughput, ours vs the published per-item approach.

Ours (the library): frames and low-texture masks are read from the feature store ONCE into uint8
tensors (the masks were computed at ingest), batches are sliced from memory, tensors are channels-last,
scoring is batched under ``torch.inference_mode``.

Reference (the published approach, measured in the same run on the same store and model): each item is
fetched and decoded from the store on its own, its GLCM low-texture mask is recomputed from the
preprocessed frame, tensors use the default contiguous memory format, and scoring runs one frame at a
time under ``torch.no_grad``. Two reference flavours differ only in the GLCM code: ``skimage`` (the
published per-window ``graycomatrix`` loop, :func:`cs_features.texture.low_texture_heatmap_reference`)
and ``fast`` (this project's integral-image GLCM), so the speed-up is reported both against the published
code and against a reference that already has the fast GLCM.

Usage::

    python benchmarks/bench_autoencoder.py --store STORE [--train-batches 6] [--ref-frames 16] \\
        --out benchmarks/results/autoencoder.json

Without ``--store`` a small synthetic dataset is generated and ingested into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cs_features.autoencoder import AE_MODELS, AE_VARIANTS, AnomalyFilter, load_frames, load_split
from cs_features.autoencoder.data import resize_frame, resize_mask
from cs_features.autoencoder.losses import reconstruction_loss
from cs_features.autoencoder.score_maps import reduce_scores
from cs_features.autoencoder.training import train_epoch
from cs_features.store import FRAMES, FeatureStore


def _glcm_mask(pre: np.ndarray, config, flavour: str) -> np.ndarray:
    from cs_features.texture import low_texture, low_texture_heatmap_reference, mask_from_heatmap

    if flavour == "skimage":
        return mask_from_heatmap(low_texture_heatmap_reference(pre, config), config)
    return low_texture(pre, config)[1]


def _reference_item(
    store: FeatureStore, row_id: int, size: int, config, flavour: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """One item the published way: fetch + decode its blob, recompute its GLCM mask, resize."""
    pre = store.frame_images([row_id], "preprocessed")[0]
    mask = _glcm_mask(pre, config, flavour)
    image = torch.from_numpy(resize_frame(pre, size)).float().div_(255.0)[None]
    return image, torch.from_numpy(resize_mask(mask, size))[None]


def _texture_config(store: FeatureStore):
    from cs_features.texture import TextureConfig

    settings = (store.get_meta("settings") or {}).get("texture") or {}
    return TextureConfig.from_dict(settings) if settings else TextureConfig()


def bench_train_ours(store: FeatureStore, size: int, batch: int, n_batches: int) -> dict:
    t0 = time.perf_counter()
    frames = load_split(store, "train", size, label="normal")
    load_s, loaded = time.perf_counter() - t0, len(frames)
    frames = frames.subset(np.arange(min(len(frames), batch * n_batches)))
    torch.manual_seed(0)
    model = AE_MODELS.get("conv-ae")().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    warm = frames.subset(np.arange(batch))
    train_epoch(model, opt, warm.images, warm.masks, AE_VARIANTS.get("weighted"), batch, np.random.default_rng(0),
                torch.device("cpu"), augment=False)
    t0 = time.perf_counter()
    train_epoch(model, opt, frames.images, frames.masks, AE_VARIANTS.get("weighted"), batch,
                np.random.default_rng(1), torch.device("cpu"), augment=False)
    seconds = time.perf_counter() - t0
    load_share = load_s * len(frames) / loaded  # the one-off load, pro rata for the timed images
    return {"images": len(frames), "seconds": seconds, "images_per_s": len(frames) / seconds,
            "one_off_load_s": load_s, "one_off_load_frames": loaded,
            "images_per_s_with_load_once": len(frames) / (seconds + load_share)}


def bench_train_reference(store: FeatureStore, size: int, batch: int, n_batches: int, flavour: str) -> dict:
    table = store.read(FRAMES, ["stem"], where="split = 'train' AND label = 'normal'", with_row_id=True)
    row_ids = table.column("_rowid").to_pylist()[: batch * n_batches]
    config = _texture_config(store)
    torch.manual_seed(0)
    model = AE_MODELS.get("conv-ae")()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    weight_fn = AE_VARIANTS.get("weighted")
    t0 = time.perf_counter()
    for start in range(0, len(row_ids), batch):
        items = [_reference_item(store, r, size, config, flavour) for r in row_ids[start:start + batch]]
        x = torch.stack([i[0] for i in items])
        w = weight_fn(torch.stack([i[1] for i in items]))
        opt.zero_grad()
        reconstruction_loss(x, model(x), w).backward()
        opt.step()
    seconds = time.perf_counter() - t0
    return {"images": len(row_ids), "seconds": seconds, "images_per_s": len(row_ids) / seconds}


def bench_score_ours(store: FeatureStore, model: AnomalyFilter) -> dict:
    t0 = time.perf_counter()
    frames = load_frames(store, None, model.img_size)
    scores = model.score(frames)
    seconds = time.perf_counter() - t0
    return {"images": len(frames), "seconds": seconds, "images_per_s": len(frames) / seconds,
            "mean_score": float(scores.mean())}


def bench_score_reference(store: FeatureStore, model: AnomalyFilter, n_frames: int, flavour: str) -> dict:
    table = store.read(FRAMES, ["stem"], with_row_id=True)
    row_ids = table.column("_rowid").to_pylist()[:n_frames]
    config = _texture_config(store)
    module = AE_MODELS.get(model.model)()
    module.load_state_dict({k: v.contiguous() for k, v in model.module_.state_dict().items()})
    module.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for row_id in row_ids:
            x, mask = _reference_item(store, row_id, model.img_size, config, flavour)
            residual = (x[None] - module(x[None])).abs()[0, 0].numpy()
            reduce_scores(residual[None], mask.numpy(), model.score_settings)
    seconds = time.perf_counter() - t0
    return {"images": len(row_ids), "seconds": seconds, "images_per_s": len(row_ids) / seconds}


def _quick_model(store: FeatureStore, size: int) -> AnomalyFilter:
    """A fitted filter for the scoring benchmark (one short epoch: speed does not depend on the weights)."""
    train = load_split(store, "train", size, label="normal")
    val = load_split(store, "val", size)
    train = train.subset(np.arange(min(len(train), 32)))
    return AnomalyFilter(img_size=size, epochs=1, device="cpu", crop_size=min(size, 128)).fit(train, val)


def _make_store(tmp: Path, embryos: int) -> str:
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings
    from cs_features.synth import generate_dataset

    generate_dataset(tmp / "data", n_embryos=embryos, seed=0, workers=1)
    ingest(tmp / "data", tmp / "store",
           IngestConfig(workers=1, settings=StoreSettings(proposals=ProposalConfig(method="ss-single",
                                                                                   max_proposals=20))))
    return str(tmp / "store")


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    store_uri = args.store or _make_store(Path(tempfile.mkdtemp(prefix="bench_ae_")), args.embryos)
    store = FeatureStore(store_uri)
    size, batch = args.img_size, args.batch_size
    out = {"store": store_uri, "frames_in_store": store.count(FRAMES), "img_size": size, "batch_size": batch,
           "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
           "python": platform.python_version(), "machine": platform.machine()}
    out["train_ours"] = bench_train_ours(store, size, batch, args.train_batches)
    out["train_reference_fast_glcm"] = bench_train_reference(store, size, batch, args.train_batches, "fast")
    out["train_reference_skimage_glcm"] = bench_train_reference(store, size, batch, 1, "skimage")
    model = _quick_model(store, size)
    out["score_ours"] = bench_score_ours(store, model)
    out["score_reference_fast_glcm"] = bench_score_reference(store, model, args.ref_frames, "fast")
    out["score_reference_skimage_glcm"] = bench_score_reference(store, model, max(2, args.ref_frames // 4), "skimage")
    for kind in ("train", "score"):
        ours = out[f"{kind}_ours"]["images_per_s"]
        for flavour in ("fast", "skimage"):
            out[f"{kind}_speedup_vs_{flavour}_glcm"] = ours / out[f"{kind}_reference_{flavour}_glcm"]["images_per_s"]
    out["targets"] = {"train_speedup": 2.0, "score_speedup": 10.0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="feature store to read (default: a fresh synthetic one)")
    parser.add_argument("--embryos", type=int, default=12, help="embryos to synthesise when --store is not given")
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-batches", type=int, default=4, help="training batches timed per variant")
    parser.add_argument("--ref-frames", type=int, default=16, help="frames scored by the (slow) fast-GLCM reference")
    parser.add_argument("--out", default="benchmarks/results/autoencoder.json")
    args = parser.parse_args()
    results = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for kind in ("train", "score"):
        print(f"{kind}: ours {results[f'{kind}_ours']['images_per_s']:.2f} img/s; reference (fast GLCM) "
              f"{results[f'{kind}_reference_fast_glcm']['images_per_s']:.2f} img/s -> "
              f"{results[f'{kind}_speedup_vs_fast_glcm']:.1f}x; reference (skimage GLCM, published) "
              f"{results[f'{kind}_reference_skimage_glcm']['images_per_s']:.2f} img/s -> "
              f"{results[f'{kind}_speedup_vs_skimage_glcm']:.1f}x")
    print(f"one-off load of all {results['train_ours']['one_off_load_frames']} frames for ours: "
          f"{results['train_ours']['one_off_load_s']:.1f} s (not in the per-epoch figure)")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
