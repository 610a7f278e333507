"""The autoencoder anomaly filter: the first stage of CS screening.

A convolutional autoencoder learns string-free preprocessed frames; frames it reconstructs badly inside
the low-texture (cavity) mask are flagged for the localizer. Everything is trained and scored from the
feature store's ``frames`` table.

- :mod:`.model`: the ``nn.Module`` (registry ``AE_MODELS``);
- :mod:`.losses`: Charbonnier + SSIM + Sobel-gradient loss, weighting variants (``AE_VARIANTS``);
- :mod:`.data`: frames and masks loaded once from the store;
- :mod:`.training`: device, seeded batches, epochs, batched residuals;
- :mod:`.filter`: :class:`AnomalyFilter` (fit / score / save / load, threshold);
- :mod:`.persist`: the model directory (safetensors + config.json);
- :mod:`.scoring`: score reducers (``REDUCERS``), residual encoding, the ``error_maps`` table;
- :mod:`.pipeline`: train from / score a store; :mod:`.panels`: the ``csf show ae`` pictures.

Names are imported lazily so ``import cs_features.autoencoder`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AnomalyFilter": "filter",
    "FrameSet": "data", "load_frames": "data", "load_split": "data",
    "ConvAutoencoder": "model", "AE_MODELS": "model",
    "AE_VARIANTS": "losses", "reconstruction_loss": "losses", "loss_map": "losses",
    "REDUCERS": "scoring", "ERROR_MAPS": "scoring", "encode_residual": "scoring", "decode_residual": "scoring",
    "read_error_map": "scoring", "read_scores": "scoring",
    "train_from_store": "pipeline", "score_store": "pipeline", "evaluate": "pipeline", "TrainResult": "pipeline",
    "ScoreResult": "pipeline", "check_settings": "pipeline",
    "show_filter": "panels", "ShowResult": "panels",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cs_features.autoencoder' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cs_features.autoencoder.{_EXPORTS[name]}"), name)
