"""Project error types.

Every error the library raises on purpose derives from :class:`CSFeaturesError`, so the CLI can turn
it into a one-line message. Messages name the offending value or path and say what is accepted.
"""

from __future__ import annotations

from pathlib import Path


class CSFeaturesError(Exception):
    """Base class of all cs_features errors."""


class ImageReadError(CSFeaturesError, ValueError):
    """An image file could not be read; carries the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path!r}: {reason}")


class DatasetError(CSFeaturesError, ValueError):
    """A dataset folder, label file or manifest is malformed or inconsistent."""


class LabelError(DatasetError):
    """A YOLO label file is malformed; carries the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"bad label file {self.path!r}: {reason}")


class DataLeakageError(DatasetError):
    """The same embryo or image appears in more than one split."""


class InputError(CSFeaturesError, ValueError):
    """A value a user gave (an option, a query, a box, a path list) is malformed or out of range."""


class StoreError(CSFeaturesError):
    """The feature store is missing, empty, or does not hold what was asked for."""


class ConfigError(CSFeaturesError, ValueError):
    """Settings that do not fit together (e.g. a model trained under another configuration)."""


class RegistryError(CSFeaturesError, KeyError):
    """An unknown or duplicate name in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(CSFeaturesError):
    """Model weights are missing, unreadable or do not fit the architecture."""


class NotFittedError(CSFeaturesError, ValueError, AttributeError):
    """An estimator was used before ``fit``."""


class FrameError(CSFeaturesError, ValueError):
    """One frame failed a pipeline stage; carries the path, the stage and the reason."""

    def __init__(self, path: str | Path, stage: str, reason: str) -> None:
        self.path = str(path)
        self.stage = stage
        self.reason = reason
        super().__init__(f"{self.path!r} failed at {stage}: {reason}")
