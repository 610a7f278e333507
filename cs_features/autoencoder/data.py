"""Load the autoencoder's frames from the feature store, once, into compact tensors.

Frames are the store's *preprocessed* images (CLAHE + bilateral, as written at ingest) resized to
``img_size`` x ``img_size`` with ``cv2.INTER_AREA``; low-texture masks are the store's GLCM masks resized
with nearest neighbour. Nothing is recomputed: the masks were made once at ingest. Pixels stay uint8 in
memory (a quarter of float32) and become float32 in [0, 1] one batch at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cs_features.errors import DatasetError
from cs_features.store import FRAMES, FeatureStore

log = logging.getLogger(__name__)

FRAME_COLUMNS = ["frame_id", "stem", "split", "label", "embryo_id", "frame_index", "low_texture_mask"]
POSITIVE_LABEL = "abnormal"
_CHUNK = 64


@dataclass
class FrameSet:
    """Frames of one selection (e.g. the validation split) ready for the autoencoder.

    Attributes:
        images: ``(N, 1, S, S)`` uint8 torch tensor, preprocessed frames resized to S.
        masks: ``(N, 1, S, S)`` bool torch tensor, low-texture masks resized to S.
        frame_ids, stems, splits, labels, embryo_ids: ``(N,)`` numpy string arrays.
    """

    images: "torch.Tensor"  # noqa: F821
    masks: "torch.Tensor"  # noqa: F821
    frame_ids: np.ndarray
    stems: np.ndarray
    splits: np.ndarray
    labels: np.ndarray
    embryo_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def y_true(self) -> np.ndarray:
        """``(N,)`` int8: 1 for abnormal (CS) frames, 0 for normal."""
        return (self.labels == POSITIVE_LABEL).astype(np.int8)

    def subset(self, index: np.ndarray) -> FrameSet:
        """The frames at ``index`` (bool mask or integer positions), as a new FrameSet."""
        index = np.asarray(index)
        positions = np.flatnonzero(index) if index.dtype == bool else index
        import torch

        rows = torch.as_tensor(positions, dtype=torch.long)
        return FrameSet(self.images[rows], self.masks[rows], self.frame_ids[positions], self.stems[positions],
                        self.splits[positions], self.labels[positions], self.embryo_ids[positions])


def resize_frame(image: np.ndarray, size: int) -> np.ndarray:
    """``(H, W)`` uint8 -> ``(size, size)`` uint8 with area interpolation (the published input)."""
    import cv2

    if image.shape == (size, size):
        return image
    interpolation = cv2.INTER_AREA if min(image.shape) >= size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """``(H, W)`` bool -> ``(size, size)`` bool, nearest neighbour."""
    import cv2

    return cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0


def split_label_counts(store: FeatureStore) -> dict[str, dict[str, int]]:
    """``{split: {label: frames}}`` of the store's ``frames`` table."""
    table = store.read(FRAMES, ["split", "label"])
    counts: dict[str, dict[str, int]] = {}
    for split, label in zip(table.column("split").to_pylist(), table.column("label").to_pylist()):
        counts.setdefault(split, {}).setdefault(label, 0)
        counts[split][label] += 1
    return counts


def load_frames(store: FeatureStore, where: str | None, img_size: int,
                progress: Callable[[int, int], None] | None = None) -> FrameSet:
    """Read the frames matching the SQL ``where`` (all if None) into a :class:`FrameSet`, sorted by stem.

    Raises:
        StoreError: the store has no ``frames`` table or the filter is invalid.
    """
    import torch

    from cs_features.io import decode_png

    table = store.read(FRAMES, FRAME_COLUMNS, where=where, with_row_id=True)
    table = table.sort_by([("stem", "ascending"), ("frame_id", "ascending")])
    n = table.num_rows
    images = torch.empty((n, 1, img_size, img_size), dtype=torch.uint8)
    masks = torch.empty((n, 1, img_size, img_size), dtype=torch.bool)
    row_ids = table.column("_rowid").to_pylist()
    mask_pngs = table.column("low_texture_mask").to_pylist()
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        for i, frame in enumerate(store.frame_images(row_ids[start:stop], "preprocessed"), start):
            images[i, 0] = torch.from_numpy(resize_frame(frame, img_size))
            masks[i, 0] = torch.from_numpy(resize_mask(decode_png(mask_pngs[i]) > 0, img_size))
        if progress:
            progress(stop, n)
    column = lambda name: np.asarray(table.column(name).to_pylist(), dtype=str)  # noqa: E731
    return FrameSet(images, masks, column("frame_id"), column("stem"), column("split"), column("label"),
                    column("embryo_id"))


def load_split(store: FeatureStore, split: str, img_size: int, label: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> FrameSet:
    """Frames of one split (optionally one label); see :func:`load_frames`."""
    if split not in ("train", "val", "test"):
        raise DatasetError(f"split {split!r} is not valid: expected 'train', 'val' or 'test'")
    where = f"split = '{split}'" + (f" AND label = '{label}'" if label else "")
    return load_frames(store, where, img_size, progress)
