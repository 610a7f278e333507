"""Training-loop pieces of the anomaly filter: torch settings, seeded batches, one epoch, batched residuals.

Batches are drawn by our own seeded shuffling (``numpy.random.default_rng(seed)``), frames are kept as
uint8 and turned into float32 [0, 1] per batch, and on the CPU tensors use the channels-last memory
format, which lets oneDNN run the convolutions without layout conversions.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch

from cs_features.autoencoder.losses import reconstruction_loss
from cs_features.runtime import torch_threads

log = logging.getLogger(__name__)


def memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


@contextmanager
def torch_runtime(device: torch.device, deterministic: bool = True) -> Iterator[None]:
    """All CPU cores for intra-op work and deterministic kernels, restoring the previous settings after."""
    det = torch.are_deterministic_algorithms_enabled()
    try:
        with torch_threads((os.cpu_count() or 1) if device.type == "cpu" else None):
            torch.use_deterministic_algorithms(deterministic, warn_only=True)
            yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=True)


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``(B, 1, S, S)`` uint8 -> float32 [0, 1] on ``device`` in the device's memory format."""
    x = images.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=memory_format(device))


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip the whole batch left-right / up-down and rotate by k * 90 degrees, chosen by ``rng``.

    Frames of a blastocyst have no preferred orientation, so these are free extra normal examples.
    """
    flip_x, flip_y, turns = bool(rng.integers(2)), bool(rng.integers(2)), int(rng.integers(4))
    dims = [d for d, flip in ((-1, flip_x), (-2, flip_y)) if flip]
    if dims:
        images, masks = images.flip(dims), masks.flip(dims)
    if turns:
        images, masks = images.rot90(turns, (-2, -1)), masks.rot90(turns, (-2, -1))
    return images, masks


def random_crops(images: torch.Tensor, masks: torch.Tensor, size: int,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``size`` x ``size`` crop per frame of ``(B, 1, S, S)`` tensors, at seeded random positions.

    Each crop coordinate is snapped to the frame's first or last possible position with probability 1/4
    each, so frame edges and corners (vignetting, zero padding) are seen as often as in whole frames;
    uniform positions would put a crop on a frame edge only about once in ``S - size`` draws.
    """
    side = images.shape[-1]
    if size >= side:
        return images, masks
    ys, xs = (_crop_starts(side - size, len(images), rng) for _ in range(2))
    crop_images = torch.stack([im[:, y:y + size, x:x + size] for im, y, x in zip(images, ys, xs)])
    crop_masks = torch.stack([m[:, y:y + size, x:x + size] for m, y, x in zip(masks, ys, xs)])
    return crop_images, crop_masks


def _crop_starts(last: int, n: int, rng: np.random.Generator) -> np.ndarray:
    starts = rng.integers(0, last + 1, n)
    side = rng.integers(0, 4, n)  # 0: first position, 1: last position, 2-3: uniform
    return np.where(side == 0, 0, np.where(side == 1, last, starts))


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                masks: torch.Tensor, weight_fn: Callable, batch_size: int, rng: np.random.Generator,
                device: torch.device, augment: bool = True, crop_size: int | None = None,
                on_batch: Callable[[], None] | None = None) -> float:
    """One pass over ``(N, 1, S, S)`` uint8 ``images`` and bool ``masks`` in seeded random order.

    With ``crop_size`` each frame contributes one random ``crop_size`` x ``crop_size`` crop (the network
    is fully convolutional, so it still scores whole frames).

    Returns:
        the mean training loss over the batches.
    """
    model.train()
    order = rng.permutation(len(images))
    losses = []
    for start in range(0, len(order), batch_size):
        index = torch.as_tensor(order[start:start + batch_size], dtype=torch.long)
        if len(index) < 2 and len(order) >= 2:  # batch norm needs two samples; the rest joins next epoch
            continue
        batch_images, batch_masks = images[index], masks[index]
        if crop_size:
            batch_images, batch_masks = random_crops(batch_images, batch_masks, crop_size, rng)
        if augment:
            batch_images, batch_masks = augment_batch(batch_images, batch_masks, rng)
        x = to_input(batch_images, device)
        weights = weight_fn(batch_masks.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss = reconstruction_loss(x, model(x).float(), weights)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if on_batch:
            on_batch()
    return float(np.mean(losses)) if losses else float("nan")


def batch_count(n: int, batch_size: int) -> int:
    """Batches :func:`train_epoch` runs for ``n`` frames (a trailing single frame is skipped)."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 or (rest == 1 and n == 1) else 0)


def scoring_batch_size(device: torch.device, side: int) -> int:
    """Frames per inference batch: 32 on a GPU; on the CPU about one 256 x 256 frame's worth of pixels.

    On the CPU these convolutions are bound by memory traffic, not arithmetic: a batch's activations
    (32 channels x S x S floats per frame and layer) stop fitting in cache, and the time per 256-px frame
    grows with the batch (35 ms at 1, 44 ms at 4, 52 ms at 32 on 2 cores, channels-last).
    """
    if device.type != "cpu":
        return 32
    return max(1, (256 * 256) // (side * side))


def inference_copy(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """What scores frames: an eval-mode copy of ``model`` with its batch norms folded into the convolutions
    (:func:`~cs_features.autoencoder.model.fused_for_inference`), on ``device`` in its memory format."""
    from cs_features.autoencoder.model import fused_for_inference

    return fused_for_inference(model).to(device, memory_format=memory_format(device))


def iter_residuals(model: torch.nn.Module, images: torch.Tensor, batch_size: int | None,
                   device: torch.device) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, residuals)`` with ``residuals`` ``(B, S, S)`` float32 ``|x - x_hat|`` per batch.

    Runs the model (an :func:`inference_copy`, for scoring) in eval mode under ``torch.inference_mode``;
    ``batch_size`` None picks :func:`scoring_batch_size`.
    """
    batch_size = batch_size or scoring_batch_size(device, images.shape[-1])
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = to_input(images[start:start + batch_size], device)
            residual = (x - model(x).float()).abs()[:, 0]
            yield start, residual.cpu().numpy().astype(np.float32, copy=False)
