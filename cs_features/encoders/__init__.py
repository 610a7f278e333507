"""Region encoders: proposals of a frame -> embedding vectors for the feature store.

Registered encoders:

- ``dinov3-vits16`` (D = 384) and ``dinov3-vitb16`` (D = 768): DINOv3 ViTs built by timm, weights
  from a file the user fetched from Meta (``weights=PATH``) or ``weights="random"`` for tests.
  Pooling ``"roi"`` (one dense pass per frame, RoIAlign on the patch-token map) or ``"crop"``
  (each box resized to 224 x 224, CLS token).
- ``classic`` (D = 104): a weights-free handcrafted descriptor (intensity, GLCM, LBP, ridge filters,
  structure tensor, HOG).

Importing this package does not import torch or timm; building a DINOv3 encoder does.
"""

from __future__ import annotations

import inspect
from typing import Any

from cs_features.encoders import classic as _classic  # noqa: F401  (registers "classic")
from cs_features.encoders import dinov3 as _dinov3  # noqa: F401  (registers "dinov3-*")
from cs_features.encoders.base import ENCODERS, Encoder
from cs_features.errors import ConfigError

__all__ = ["ENCODERS", "Encoder", "get_encoder", "encoder_names"]


def encoder_names() -> list[str]:
    """Names of the registered encoders, sorted."""
    return ENCODERS.names()


def get_encoder(name: str, weights: str | None = None, pooling: str = "roi", device: str = "cpu",
                batch_size: int = 32, **settings: Any) -> Encoder:
    """Build the encoder registered as ``name``.

    Args:
        name: one of :func:`encoder_names`.
        weights: path of a weights file, ``"random"`` (testing only) or None (encoders without
            weights); see each encoder for what it accepts.
        pooling: ``"roi"`` (default) or ``"crop"`` where the encoder supports it.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        batch_size: images per forward pass.
        **settings: encoder-specific settings (e.g. ``roi_size`` for DINOv3).

    Raises:
        RegistryError: unknown name (the message lists the known ones).
        ConfigError: a setting the encoder does not take, or a bad value.
        WeightsError: missing, unreadable or mismatched weights.
    """
    cls = ENCODERS.get(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise ConfigError(f"encoder {name!r} does not take settings {unknown}; accepted: {accepted}")
    return cls(weights=weights, pooling=pooling, device=device, batch_size=batch_size, **settings)
