"""``mlp``: the published two-output MLP head (string logit + IoU regression) and its training wrapper.

Architecture (as published): LayerNorm -> Linear 256 -> ReLU -> Dropout 0.3 -> Linear 128 -> ReLU ->
Dropout 0.3, then a classification logit and an IoU output. Loss: sigmoid focal BCE (alpha 0.25,
gamma 2) + SmoothL1 on the IoU. AdamW (lr 1e-3, weight decay 1e-4), batch 32, up to 20 epochs, early
stopping with patience 10 on validation average precision. Each epoch trains on a fresh balanced
undersample of the majority class; feature MixUp (alpha 0.2) is applied to half the batches.

One addition to the published recipe: features are standardised with the training mean and standard
deviation (stored inside the module) before the LayerNorm. Handcrafted vectors mix scales of 1e-3 to
1e1, which a per-row LayerNorm alone cannot undo.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cs_features.heads.base import HEADS, RegionHead, balanced_undersample
from cs_features.model_dir import atomic_path
from cs_features.runtime import resolve_device, torch_threads

log = logging.getLogger(__name__)
WEIGHTS_FILE = "model.safetensors"


class RegionMLP(nn.Module):
    """``(B, D)`` embeddings -> ``(B,)`` string logit and ``(B,)`` IoU in [0, 1]."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (256, 128), dropout: float = 0.3) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_scale", torch.ones(in_dim))
        layers: list[nn.Module] = [nn.LayerNorm(in_dim)]
        width = in_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.trunk = nn.Sequential(*layers)
        self.cls_head = nn.Linear(width, 1)
        self.iou_head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk((x - self.feature_mean) / self.feature_scale)
        return self.cls_head(h).squeeze(-1), torch.sigmoid(self.iou_head(h)).squeeze(-1)


def focal_bce(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Mean sigmoid focal loss (Lin et al. 2017); ``targets`` may be soft (MixUp)."""
    p = torch.sigmoid(logits)
    ce = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * ce).mean()


@HEADS.register("mlp")
class MLPHead(RegionHead):
    """The published MLP head; see the module docstring. All training settings are hyperparameters.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``; training is deterministic for a seed on one device.
        mixup_p: share of batches mixed; mixup_alpha: Beta(alpha, alpha) of the mixing weight.
        iou_weight: weight of the SmoothL1 IoU term against the focal term.
        num_threads: torch CPU threads while fitting and predicting (batches of 32 rows gain nothing
            from more, and lose a lot when other processes share the cores); None keeps torch's.
    """

    name = "mlp"

    def __init__(self, hidden: tuple = (256, 128), dropout: float = 0.3, lr: float = 1e-3,
                 weight_decay: float = 1e-4, batch_size: int = 32, epochs: int = 20, patience: int = 10,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, iou_weight: float = 1.0,
                 mixup_alpha: float = 0.2, mixup_p: float = 0.5, balanced: bool = True, device: str = "cpu",
                 num_threads: int | None = 1, seed: int = 0, score_mode: str = "product", alpha: float = 0.5) -> None:
        super().__init__(seed=seed, score_mode=score_mode, alpha=alpha)
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.iou_weight = iou_weight
        self.mixup_alpha = mixup_alpha
        self.mixup_p = mixup_p
        self.balanced = balanced
        self.device = device
        self.num_threads = num_threads

    def _build(self, in_dim: int) -> RegionMLP:
        return RegionMLP(in_dim, tuple(int(h) for h in self.hidden), float(self.dropout))

    def _fit(self, X, y, iou, X_val, y_val, iou_val) -> None:
        device = resolve_device(self.device)
        rng = np.random.default_rng(self.seed)
        # fork_rng keeps the caller's global torch RNG untouched; everything random comes from the seed
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch_threads(self.num_threads):
            torch.manual_seed(self.seed)
            module = self._build(X.shape[1])
            scale = X.std(axis=0)
            module.feature_mean.copy_(torch.from_numpy(X.mean(axis=0)))
            module.feature_scale.copy_(torch.from_numpy(np.where(scale > 1e-6, scale, 1.0).astype(np.float32)))
            module.to(device)
            self.history_ = self._train_loop(module, device, rng, (X, y, iou), (X_val, y_val))
        self.module_ = module.cpu().eval()

    def _train_loop(self, module: RegionMLP, device, rng, train, val) -> list[dict]:
        from sklearn.metrics import average_precision_score

        X, y, iou = (torch.tensor(a, dtype=torch.float32) for a in train)
        optimiser = torch.optim.AdamW(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best_ap, best_state, stale, history = -1.0, None, 0, []
        for epoch in range(int(self.epochs)):
            order = balanced_undersample(train[1], rng) if self.balanced else rng.permutation(len(y))
            loss = self._run_epoch(module, optimiser, device, rng, X, y, iou, order)
            p_val = self._predict_module(module, val[0], device)[0]
            ap = float(average_precision_score(val[1], p_val))
            history.append({"epoch": epoch + 1, "loss": loss, "val_ap": ap, "rows": int(len(order))})
            log.debug("mlp epoch %d: loss %.4f, validation AP %.4f", epoch + 1, loss, ap)
            if ap > best_ap:
                best_ap, best_state, stale = ap, copy.deepcopy(module.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        module.load_state_dict(best_state)
        self.val_average_precision_ = best_ap
        return history

    def _run_epoch(self, module, optimiser, device, rng, X, y, iou, order) -> float:
        module.train()
        total, batches = 0.0, 0
        for start in range(0, len(order), int(self.batch_size)):
            index = torch.from_numpy(order[start:start + int(self.batch_size)])
            xb, yb, ib = X[index].to(device), y[index].to(device), iou[index].to(device)
            if self.mixup_alpha > 0 and len(index) > 1 and rng.random() < self.mixup_p:
                lam = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
                perm = torch.from_numpy(rng.permutation(len(index))).to(device)
                xb = lam * xb + (1 - lam) * xb[perm]
                yb = lam * yb + (1 - lam) * yb[perm]
                ib = lam * ib + (1 - lam) * ib[perm]  # NaN (unknown) stays NaN and is masked below
            logits, iou_pred = module(xb)
            loss = focal_bce(logits, yb, self.focal_alpha, self.focal_gamma)
            known = torch.isfinite(ib)
            if known.any():
                loss = loss + self.iou_weight * nn.functional.smooth_l1_loss(iou_pred[known], ib[known])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, batches = total + float(loss.detach()), batches + 1
        return total / max(batches, 1)

    @staticmethod
    @torch.no_grad()
    def _predict_module(module: RegionMLP, X: np.ndarray, device, batch: int = 65536):
        module.eval()
        p_parts, iou_parts = [], []
        for start in range(0, len(X), batch):
            logits, iou = module(torch.tensor(X[start:start + batch], device=device))
            p_parts.append(torch.sigmoid(logits).cpu().numpy())
            iou_parts.append(iou.cpu().numpy())
        return np.concatenate(p_parts), np.concatenate(iou_parts)

    def _prediction_device(self) -> torch.device:
        """The head's device; a head trained on a GPU still predicts (on the CPU) where there is none."""
        if str(self.device).strip().lower().startswith("cuda") and not torch.cuda.is_available():
            log.warning("mlp head was set to %s but CUDA is not available; predicting on the CPU", self.device)
            return torch.device("cpu")
        return resolve_device(self.device)

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        device = self._prediction_device()
        with torch_threads(self.num_threads):
            return self._predict_module(self.module_.to(device), X, device)

    def _save_weights(self, directory: Path) -> list[str]:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"params": json.dumps(self.get_params(), default=str)})
        return [WEIGHTS_FILE]

    def _load_weights(self, directory: Path, config: dict) -> None:
        from safetensors.torch import load_file

        state = load_file(str(directory / WEIGHTS_FILE))
        module = self._build(self.n_features_)
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"weights do not fit the configured architecture: {exc}") from exc
        self.module_ = module.eval()
