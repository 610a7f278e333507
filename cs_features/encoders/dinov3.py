"""DINOv3 ViT-S/16 and ViT-B/16 region encoders, built by timm and never downloaded.

The DINOv3 licence requires each user to fetch the weights from Meta themselves, so the encoder
loads a file the user names (``weights=PATH``): safetensors or a ``.pth``/``.pt`` state dict (read
with ``torch.load(weights_only=True)``), in timm's key layout or in the original DINOv3 release
layout (``storage_tokens``, ``blocks.N.ls1.gamma``, ``rope_embed.periods``, ...), which timm's own
``eva.checkpoint_filter_fn`` converts. ``weights="random"`` builds seeded random weights for tests.

Input: the preprocessed grayscale frame, (H, W) float32 in [0, 1], replicated to 3 channels and
normalised with the model's mean/std (ImageNet). Pooling:

- ``"roi"`` (default): one dense forward pass per frame, resized so its long side is ``roi_size``
  (rounded to a multiple of 16 on each side); the patch tokens (CLS and the 4 register tokens
  dropped) form a (D, h/16, w/16) map; ``torchvision.ops.roi_align`` (``aligned=True``) samples a
  ``roi_output`` x ``roi_output`` grid per box, averaged to one D-vector.
- ``"crop"`` (as published): each box is cropped and resized to ``crop_size`` x ``crop_size``
  (bilinear, by ``roi_align`` on the frame), forwarded in batches; the CLS token is the vector.

Vectors are raw (not L2-normalised): the store keeps them as they are, search uses cosine distance.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cs_features.encoders.base import ENCODERS, Encoder, file_sha256, validate_frame_boxes
from cs_features.errors import ConfigError, WeightsError
from cs_features.runtime import resolve_device

logger = logging.getLogger(__name__)

__all__ = ["DINOv3Encoder", "DINOv3ViTS16", "DINOv3ViTB16", "POOLINGS", "build_dinov3", "read_state_dict"]

POOLINGS = ("roi", "crop")
PATCH = 16
DOWNLOAD_PAGE = "https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/"
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# Training checkpoints nest the state dict under one of these keys.
_WRAPPER_KEYS = ("model_ema", "model", "module", "state_dict", "teacher")


def _missing_weights_message(name: str) -> str:
    return (f"encoder {name!r} needs a weights file: the DINOv3 licence requires users to fetch the "
            f"weights themselves from Meta's DINOv3 release page ({DOWNLOAD_PAGE}). Download "
            f"{name.replace('-', '_')}_pretrain_lvd1689m-*.pth, then pass --weights PATH (weights=PATH in Python; "
            f".safetensors, .pth or .pt). For testing only, --weights random builds random weights.")


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def read_state_dict(path: str | Path) -> dict:
    """Read a ``.safetensors`` or weights-only ``.pth``/``.pt`` file into a flat ``{key: tensor}`` dict.

    Nothing but tensors (and the dicts that hold them) is ever unpickled.

    Raises:
        WeightsError: naming the path and the reason (missing, not a file, bad suffix, corrupt,
            not a state dict).
    """
    import torch

    path = Path(path)
    accepted = ", ".join((".safetensors",) + TORCH_SUFFIXES)
    if not path.exists():
        raise WeightsError(f"weights file {str(path)!r} does not exist; pass the path of the DINOv3 "
                           f"weights you downloaded ({accepted})")
    if not path.is_file():
        raise WeightsError(f"weights path {str(path)!r} is not a file; pass a {accepted} file")
    suffix = path.suffix.lower()
    if suffix not in (".safetensors",) + TORCH_SUFFIXES:
        raise WeightsError(f"weights file {str(path)!r} has suffix {suffix!r}; accepted: {accepted}")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a user's file can fail in many ways; each becomes one WeightsError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WeightsError(f"cannot read weights file {str(path)!r}: {type(exc).__name__}: {reason}") from exc
    return _flat_state_dict(obj, path)


def _flat_state_dict(obj: Any, path: Path) -> dict:
    """Unwrap training-checkpoint nesting and ``module.``/``backbone.`` prefixes; check all are tensors."""
    import torch

    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"weights file {str(path)!r} holds {type(obj).__name__}, expected a non-empty "
                           "state dict of tensors")
    for prefix in ("module.", "backbone."):
        if all(isinstance(k, str) and k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"weights file {str(path)!r} is not a state dict: {len(bad)} entries are not "
                           f"tensors (e.g. {bad[:3]})")
    return obj


def is_original_layout(state_dict: dict) -> bool:
    """True for the DINOv3 release key layout (``storage_tokens``, ``ls1.gamma``...), False for timm's."""
    return "storage_tokens" in state_dict


def _has_qkv_bias(state_dict: dict) -> bool:
    """Whether a checkpoint carries non-zero q/v biases, i.e. needs timm's ``*_qkvb`` variant.

    The released distilled ViT-S/B checkpoints store an all-zero ``qkv.bias``; timm's plain variants
    have no bias and its converter drops it.
    """
    if any(k.endswith("attn.q_bias") for k in state_dict):
        return True
    for key, value in state_dict.items():
        if key.endswith("attn.qkv.bias"):
            q_bias, _, v_bias = value.float().chunk(3, dim=-1)
            if bool(q_bias.abs().max() > 0) or bool(v_bias.abs().max() > 0):
                return True
    return False


def _to_timm_layout(state_dict: dict, model: Any, path: str | Path) -> dict:
    """Convert a release-layout state dict with timm's own ``eva.checkpoint_filter_fn``."""
    if not is_original_layout(state_dict):
        return state_dict
    import contextlib
    import io

    from timm.models.eva import checkpoint_filter_fn

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # timm prints when it drops a zero qkv bias
            return checkpoint_filter_fn(state_dict, model)
    except Exception as exc:  # timm's converter on a malformed file: report it as a weights problem
        raise WeightsError(f"cannot convert weights {str(path)!r} from the DINOv3 release layout: "
                           f"{type(exc).__name__}: {exc}") from exc


def _check_fit(model: Any, state_dict: dict, path: str | Path, arch: str) -> None:
    """Raise WeightsError listing a few missing / unexpected / mis-shaped keys, if any."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}"
              for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        raise WeightsError(
            f"weights file {str(path)!r} does not fit timm {arch!r}: {len(missing)} missing keys "
            f"{missing[:4]}, {len(unexpected)} unexpected keys {unexpected[:4]}, {len(shapes)} shape "
            f"mismatches {shapes[:3]}; pass a DINOv3 checkpoint of this architecture")


def build_dinov3(arch: str, weights: str | Path, seed: int = 0) -> Any:
    """Build timm ``arch`` with ``pretrained=False`` and load ``weights`` (a file, or ``"random"``).

    ``pretrained=False`` means timm never contacts the Hugging Face hub: the architecture comes from
    its registry and the weights only from ``weights``, so nothing is downloaded and no process-wide
    setting (such as ``HF_HUB_OFFLINE``) is needed.

    A checkpoint with non-zero q/v biases is built as ``arch + "_qkvb"``. Random weights are drawn
    from a forked RNG seeded with ``seed``, so they are the same in every process.

    Raises:
        WeightsError: unreadable file or keys that do not fit (strict loading).
    """
    import timm
    import torch

    state_dict = None if str(weights) == "random" else read_state_dict(weights)
    variant = f"{arch}_qkvb" if state_dict is not None and _has_qkv_bias(state_dict) else arch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(variant, pretrained=False, num_classes=0)
    if state_dict is not None:
        state_dict = _to_timm_layout(state_dict, model, weights)
        _check_fit(model, state_dict, weights, variant)
        model.load_state_dict(state_dict, strict=True)
    return model


class DINOv3Encoder(Encoder):
    """A DINOv3 ViT turned into a region encoder (see the module docstring for pooling).

    Args:
        weights: path of a ``.safetensors``/``.pth``/``.pt`` file, or ``"random"`` (testing only).
        pooling: ``"roi"`` or ``"crop"``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        batch_size: frames (roi) or crops (crop) per forward pass.
        roi_size: long side of the frame for the dense pass (multiple of 16 after rounding).
        crop_size: side of a box crop for ``"crop"`` pooling (224 as published).
        roi_output: RoIAlign grid side per box before averaging.
        seed: seed of the random weights (``weights="random"`` only).

    Raises:
        WeightsError: no weights given, or the file is missing, unreadable or of another architecture.
        ConfigError: a bad pooling, device or numeric setting.
    """

    arch = ""

    def __init__(self, weights: str | Path | None = None, pooling: str = "roi", device: str = "cpu",
                 batch_size: int = 32, roi_size: int = 512, crop_size: int = 224, roi_output: int = 2,
                 seed: int = 0) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling {pooling!r} is not supported by {self.name!r}; use one of {POOLINGS}")
        self.pooling = pooling
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.roi_size = _positive_int(roi_size, "roi_size", PATCH)
        self.crop_size = _positive_int(crop_size, "crop_size", PATCH)
        self.roi_output = _positive_int(roi_output, "roi_output")
        self.seed = _positive_int(seed, "seed", 0)
        if weights is None or str(weights).strip() == "":
            raise WeightsError(_missing_weights_message(self.name))
        self.device = resolve_device(device)
        self.model = build_dinov3(self.arch, weights, self.seed).to(self.device).eval()
        if str(weights) == "random":
            self.weights_hash = "random"
            logger.warning("%s uses RANDOM weights (seed %d): embeddings are meaningless, for testing only",
                           self.name, self.seed)
        else:
            self.weights_hash = file_sha256(weights)
            logger.info("%s loaded weights %s (sha256 %s)", self.name, weights, self.weights_hash)
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        self.mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
        self.num_prefix_tokens = int(getattr(self.model, "num_prefix_tokens", 1))

    def settings(self) -> dict[str, Any]:
        return {"arch": self.arch, "roi_size": self.roi_size, "crop_size": self.crop_size,
                "roi_output": self.roi_output, "mean": list(self.mean), "std": list(self.std),
                "l2_normalised": False, "token": "cls" if self.pooling == "crop" else "patch_mean"}

    def _encode(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self._embed([(image, boxes)])[0]

    def encode_batch(self, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Embed several frames; ``roi`` runs equal-sized frames together, ``crop`` batches each frame's crops.

        Args:
            items: ``(image, boxes)`` pairs, (H, W) float32 in [0, 1] and (N, 4) int32.

        Returns:
            one (N_i, dim) float32 array per pair.
        """
        checked = [validate_frame_boxes(image, boxes) for image, boxes in items]
        return self._embed(checked)

    def _embed(self, checked: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        import torch

        out = [np.zeros((0, self.dim), np.float32) for _ in checked]
        todo = [i for i, (_, boxes) in enumerate(checked) if len(boxes)]
        with torch.inference_mode():
            if self.pooling == "crop":
                vectors = self._crop_vectors([checked[i] for i in todo])
                for i, v in zip(todo, vectors):
                    out[i] = v
                return out
            groups: dict[tuple[int, int], list[int]] = {}
            for i in todo:
                groups.setdefault(checked[i][0].shape, []).append(i)
            for indices in groups.values():
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start:start + self.batch_size]
                    for i, v in zip(chunk, self._roi_vectors([checked[i] for i in chunk])):
                        out[i] = v
        return out

    def _normalised(self, gray):
        """(B, 1, h, w) float32 in [0, 1] -> (B, 3, h, w) normalised with the model's mean/std."""
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float32, device=gray.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=gray.device).view(1, 3, 1, 1)
        return (gray.expand(-1, 3, -1, -1) - mean) / std

    def dense_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the dense pass: long side ``roi_size``, each side rounded to a multiple of 16."""
        scale = self.roi_size / max(height, width)
        return (max(1, round(height * scale / PATCH)) * PATCH, max(1, round(width * scale / PATCH)) * PATCH)

    def _dense_maps(self, gray: Any) -> Any:
        """(B, 1, H, W) frames -> (B, D, h / 16, w / 16) patch-token maps at :meth:`dense_size`."""
        import torch.nn.functional as F

        h, w = self.dense_size(gray.shape[2], gray.shape[3])
        gray = F.interpolate(gray, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        tokens = self.model.forward_features(self._normalised(gray))
        patches = tokens[:, self.num_prefix_tokens:, :].float()  # drop CLS and register tokens
        return patches.transpose(1, 2).reshape(gray.shape[0], self.dim, h // PATCH, w // PATCH)

    def feature_map(self, image: np.ndarray) -> np.ndarray:
        """The dense patch-token map ``roi`` pooling samples: (H, W) float32 -> (D, h/16, w/16) float32."""
        import torch

        image, _ = validate_frame_boxes(image, np.zeros((0, 4), np.int32))
        with torch.inference_mode():
            fmap = self._dense_maps(torch.from_numpy(image[None, None]).to(self.device))
        return fmap[0].cpu().numpy()

    def _roi_vectors(self, frames: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """One dense pass over equal-sized frames, then RoIAlign per box -> list of (N_i, D) float32."""
        import torch
        from torchvision.ops import roi_align

        height, width = frames[0][0].shape
        h, w = self.dense_size(height, width)
        fmap = self._dense_maps(torch.from_numpy(np.stack([image for image, _ in frames])[:, None]).to(self.device))
        # Boxes go to the resized frame's pixels first: x and y scale differently after rounding.
        scale = torch.tensor([w / width, h / height, w / width, h / height], dtype=torch.float32)
        rois = [(torch.from_numpy(boxes).float() * scale).to(self.device) for _, boxes in frames]
        pooled = roi_align(fmap, rois, output_size=self.roi_output, spatial_scale=1.0 / PATCH,
                           sampling_ratio=2, aligned=True)
        vectors = pooled.mean(dim=(2, 3)).cpu().numpy().astype(np.float32)
        return np.split(vectors, np.cumsum([len(boxes) for _, boxes in frames])[:-1])

    def _crop_tensor(self, image: np.ndarray, boxes: np.ndarray) -> Any:
        """(H, W) frame, (N, 4) boxes -> (N, 1, crop_size, crop_size) tensor on the device."""
        import torch
        from torchvision.ops import roi_align

        gray = torch.from_numpy(image[None, None]).to(self.device)
        rois = torch.from_numpy(boxes).float().to(self.device)
        # roi_align(aligned=True) is bilinear crop-and-resize (the align_corners=False convention);
        # a box larger than the crop averages several samples per output pixel (adaptive sampling).
        return roi_align(gray, [rois], output_size=self.crop_size, spatial_scale=1.0, sampling_ratio=-1,
                         aligned=True)

    def box_crops(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The crops ``crop`` pooling feeds the model (before normalisation): -> (N, S, S) float32."""
        import torch

        image, boxes = validate_frame_boxes(image, boxes)
        with torch.inference_mode():
            return self._crop_tensor(image, boxes)[:, 0].cpu().numpy()

    def _crop_vectors(self, frames: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Each box resized to crop_size^2, CLS token of batched forwards -> list of (N_i, D) float32."""
        chunks: list[list[np.ndarray]] = [[] for _ in frames]
        for f, (image, boxes) in enumerate(frames):
            for start in range(0, len(boxes), self.batch_size):
                crops = self._crop_tensor(image, boxes[start:start + self.batch_size])
                cls = self.model.forward_features(self._normalised(crops))[:, 0]
                chunks[f].append(cls.float().cpu().numpy().astype(np.float32))
        return [np.concatenate(parts) for parts in chunks]


@ENCODERS.register("dinov3-vits16")
class DINOv3ViTS16(DINOv3Encoder):
    """DINOv3 ViT-S/16 (timm ``vit_small_patch16_dinov3``), D = 384."""

    name = "dinov3-vits16"
    arch = "vit_small_patch16_dinov3"
    dim = 384


@ENCODERS.register("dinov3-vitb16")
class DINOv3ViTB16(DINOv3Encoder):
    """DINOv3 ViT-B/16 (timm ``vit_base_patch16_dinov3``), D = 768."""

    name = "dinov3-vitb16"
    arch = "vit_base_patch16_dinov3"
    dim = 768
