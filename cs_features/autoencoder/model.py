"""The convolutional autoencoder of the anomaly filter (layers and ``forward`` only).

Published architecture (``conv-ae``), for a ``(N, 1, S, S)`` input with S divisible by 8:

- encoder: three stages of two 3 x 3 convolutions (32-32, 64-64, 128-128 channels), each followed by
  batch norm and ReLU, with a 2 x 2 max-pool after each stage -> ``(N, 128, S/8, S/8)``;
- bottleneck: 1 x 1 convolutions 128 -> 256 -> 128 (batch norm + ReLU);
- decoder: three transposed convolutions (kernel 4, stride 2, padding 1) 128 -> 64 -> 32 -> 32 with batch
  norm + ReLU, then a 3 x 3 transposed convolution to 1 channel and a sigmoid -> ``(N, 1, S, S)`` in (0, 1).

``conv-ae-up`` (the default of :class:`~cs_features.autoencoder.filter.AnomalyFilter`) replaces each
upsampling transposed convolution by nearest-neighbour doubling + a 3 x 3 convolution, which cannot
produce checkerboard artifacts (Odena et al., 2016, "Deconvolution and checkerboard artifacts").

Architectures are registered in :data:`AE_MODELS` so a saved model names the one it was built with.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from cs_features.registry import Registry

AE_MODELS: Registry = Registry("autoencoder model")


def _conv_bn_relu(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


def _up_bn_relu(c_in: int, c_out: int, upsample: str) -> list[nn.Module]:
    if upsample == "transposed":
        up: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)]
    else:  # nearest-neighbour doubling, then a 3 x 3 convolution: no checkerboard (Odena et al., 2016)
        up = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    return up + [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder for ``(N, 1, S, S)`` frames in [0, 1] (S divisible by 2**len(widths)).

    Args:
        widths: channels of the encoder stages (two convolutions each, then a 2x max-pool).
        bottleneck: channels of the 1 x 1 bottleneck convolutions.
        upsample: decoder stages: ``transposed`` convolutions (published) or ``nearest`` upsampling + 3 x 3
            convolution.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128), bottleneck: Sequence[int] = (256, 128),
                 upsample: str = "transposed") -> None:
        super().__init__()
        if upsample not in ("transposed", "nearest"):
            raise ValueError(f"upsample={upsample!r} is not valid: expected 'transposed' or 'nearest'")
        layers: list[nn.Module] = []
        c_in = 1
        for width in widths:
            layers += _conv_bn_relu(c_in, width, 3) + _conv_bn_relu(width, width, 3) + [nn.MaxPool2d(2)]
            c_in = width
        self.encoder = nn.Sequential(*layers)
        layers = []
        for width in bottleneck:
            layers += _conv_bn_relu(c_in, width, 1)
            c_in = width
        self.bottleneck = nn.Sequential(*layers)
        layers = []
        for width in [*reversed(widths[:-1]), widths[0]]:
            layers += _up_bn_relu(c_in, width, upsample)
            c_in = width
        layers += [nn.ConvTranspose2d(c_in, 1, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, S, S)`` -> reconstruction ``(N, 1, S, S)`` in (0, 1)."""
        return self.decoder(self.bottleneck(self.encoder(x)))


def fused_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each batch norm folded into the convolution before it.

    In eval mode a batch norm is a fixed per-channel scale and shift, so folding it into the preceding
    (transposed) convolution's weights and bias gives the same output up to float rounding (about 1e-7
    on [0, 1] reconstructions) and saves a pass over every activation: 15-25 % of a CPU forward. ``model``
    itself is left as it is (training goes on with its batch norms).
    """
    fused = copy.deepcopy(model).eval()
    for name, child in list(fused.named_children()):
        if isinstance(child, nn.Sequential):
            setattr(fused, name, _folded(child))
    return fused


def _folded(sequence: nn.Sequential) -> nn.Sequential:
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    kept: list[nn.Module] = []
    for layer in sequence:
        if isinstance(layer, nn.BatchNorm2d) and kept and isinstance(kept[-1], (nn.Conv2d, nn.ConvTranspose2d)):
            kept[-1] = fuse_conv_bn_eval(kept[-1], layer, transpose=isinstance(kept[-1], nn.ConvTranspose2d))
        else:
            kept.append(layer)
    return nn.Sequential(*kept)


@AE_MODELS.register("conv-ae")
def conv_ae() -> ConvAutoencoder:
    """The published 32-32 / 64-64 / 128-128 encoder, 256 -> 128 bottleneck, transposed-conv decoder."""
    return ConvAutoencoder((32, 64, 128), (256, 128), upsample="transposed")


@AE_MODELS.register("conv-ae-up")
def conv_ae_up() -> ConvAutoencoder:
    """``conv-ae`` with nearest-neighbour upsampling + 3 x 3 convolutions in the decoder.

    After a few epochs the transposed-convolution decoder paints checkerboard patterns into parts of the
    cavity, which then outscore the strings; this decoder cannot (see the module docstring of
    :mod:`cs_features.autoencoder.filter` for the figures).
    """
    return ConvAutoencoder((32, 64, 128), (256, 128), upsample="nearest")
