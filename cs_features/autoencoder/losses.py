"""Per-pixel reconstruction loss of the anomaly autoencoder and the loss-weighting variants.

The loss map of a reconstruction ``x_hat`` of ``x`` (both ``(N, 1, H, W)`` float in [0, 1]) is

    L = charbonnier(x - x_hat) + 0.2 * (1 - SSIM(x, x_hat)) + 0.1 * |sobel(x) - sobel(x_hat)|_1

- **Charbonnier**: ``sqrt(r**2 + eps**2)`` with ``eps = 1e-3`` (a smooth L1; not shifted by ``-eps``).
- **SSIM**: the local SSIM map of Wang et al. (2004) with an 11 x 11 Gaussian window, sigma 1.5
  (separable, truncated at radius 5 and normalised to sum 1, as ``scipy.ndimage.gaussian_filter`` with
  ``truncate=3.5``), population (not sample) covariances, ``C1 = (0.01 * L)**2``, ``C2 = (0.03 * L)**2``
  with data range ``L = 1``. Borders are padded by half-sample symmetric reflection (``d c b a | a b c d``),
  which is scipy's ``mode="reflect"``, so the map equals ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, full=True)`` everywhere.
- **Sobel-gradient L1**: ``|Gx(x) - Gx(x_hat)| + |Gy(x) - Gy(x_hat)|`` with the 3 x 3 Sobel kernels
  (unnormalised, weights 1-2-1), borders replicated.

The loss of an image is the spatial mean of ``W * L``. Variants (registry :data:`AE_VARIANTS`) choose
``W``: ``unweighted`` is all ones; ``weighted`` is ``1 + 0.5 * low_texture_mask`` normalised to mean 1 per
image, which puts more of the training signal on the smooth cytoplasm/cavity the filter must model well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cs_features.registry import Registry

CHARBONNIER_EPS = 1e-3
SSIM_WEIGHT = 0.2
GRADIENT_WEIGHT = 0.1
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
MASK_WEIGHT = 0.5

AE_VARIANTS: Registry = Registry("autoencoder variant")


def charbonnier(residual: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """``sqrt(residual**2 + eps**2)`` elementwise; any shape in, same shape out."""
    return torch.sqrt(residual * residual + eps * eps)


def gaussian_kernel_1d(window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """``(window,)`` float32 Gaussian weights summing to 1."""
    radius = (window - 1) / 2
    x = torch.arange(window, dtype=torch.float64) - radius
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).float()


def _symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Half-sample symmetric padding of the last two dims of ``(N, C, H, W)`` (scipy ``reflect``)."""
    h, w = x.shape[-2:]
    rows = torch.cat([torch.arange(pad - 1, -1, -1), torch.arange(h), torch.arange(h - 1, h - 1 - pad, -1)])
    cols = torch.cat([torch.arange(pad - 1, -1, -1), torch.arange(w), torch.arange(w - 1, w - 1 - pad, -1)])
    rows, cols = rows.clamp(0, h - 1).to(x.device), cols.clamp(0, w - 1).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _gaussian_filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of ``(N, C, H, W)`` with symmetric borders; same shape out."""
    channels, k = x.shape[1], kernel.numel()
    padded = _symmetric_pad(x, k // 2)
    kernel = kernel.to(x.device, x.dtype)
    horizontal = kernel.view(1, 1, 1, k).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, k, 1).repeat(channels, 1, 1, 1)
    out = F.conv2d(padded, horizontal, groups=channels)
    return F.conv2d(out, vertical, groups=channels)


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
             data_range: float = 1.0) -> torch.Tensor:
    """Local SSIM of ``(N, C, H, W)`` images (module docstring); returns ``(N, C, H, W)``, 1 where equal."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim_map expects two (N, C, H, W) tensors of one shape, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    kernel = gaussian_kernel_1d(window, sigma)
    stacked = _gaussian_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), kernel)
    mu_x, mu_y, xx, yy, xy = torch.split(stacked, x.shape[1], dim=1)
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def sobel_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel derivatives (Gx along columns, Gy along rows) of ``(N, 1, H, W)``, borders replicated."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    kernels = torch.stack([gx, gx.t()]).unsqueeze(1)
    out = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels)
    return out[:, :1], out[:, 1:]


def sobel_gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``|Gx(x) - Gx(y)| + |Gy(x) - Gy(y)|`` per pixel of ``(N, 1, H, W)`` images; same shape out."""
    gx_x, gy_x = sobel_gradients(x)
    gx_y, gy_y = sobel_gradients(y)
    return (gx_x - gx_y).abs() + (gy_x - gy_y).abs()


def loss_map(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss ``(N, 1, H, W)`` of a reconstruction ``x_hat`` of ``x`` (module docstring)."""
    return (charbonnier(x - x_hat) + SSIM_WEIGHT * (1.0 - ssim_map(x, x_hat))
            + GRADIENT_WEIGHT * sobel_gradient_l1(x, x_hat))


def normalise_weights(weights: torch.Tensor) -> torch.Tensor:
    """Scale each image's ``(N, 1, H, W)`` weight map to spatial mean 1."""
    return weights / weights.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)


@AE_VARIANTS.register("weighted")
def mask_weighted(low_texture_mask: torch.Tensor) -> torch.Tensor:
    """``W = 1 + 0.5 * mask`` normalised to mean 1 per image; ``(N, 1, H, W)`` bool in, float32 out."""
    return normalise_weights(1.0 + MASK_WEIGHT * low_texture_mask.float())


@AE_VARIANTS.register("unweighted")
def uniform_weights(low_texture_mask: torch.Tensor) -> torch.Tensor:
    """All-ones ``(N, 1, H, W)`` weights (the plain spatial mean)."""
    return torch.ones(low_texture_mask.shape, dtype=torch.float32, device=low_texture_mask.device)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over images of the spatial mean of ``weights * values`` (both ``(N, 1, H, W)``); a scalar."""
    return (values * weights).mean(dim=(1, 2, 3)).mean()


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scalar training loss: :func:`weighted_mean` of :func:`loss_map` with ``(N, 1, H, W)`` weights."""
    return weighted_mean(loss_map(x, x_hat), weights)
