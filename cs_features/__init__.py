"""cs_features: find cytoplasmic strings in human embryo time-lapse microscopy.

The package is importable without torch, OpenCV or LanceDB loaded: each pipeline stage imports its
heavy dependencies inside its own module.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
