"""Region proposals: where a string might be.

- ``config``: :class:`ProposalConfig` (and the filament source's :class:`FilamentConfig`);
- ``union``: the source registry, each source's boxes finalised, their union de-duplicated and capped
  (:func:`propose`);
- ``selective_search``: OpenCV Selective Search as published; ``filament``: boxes around thin
  curvilinear paths inside the embryo;
- ``learned``: ``strings``, boxes around the learned string map, padded as the training boxes are, default and
  tight, strongest first;
- ``weak_labels``: proposal labels from ground-truth boxes; ``residual``: boxes around high-residual
  regions of the autoencoder's error map.

Importing the package registers every source.
"""

from cs_features.proposals import filament, learned, selective_search  # noqa: F401  (register the sources)
from cs_features.proposals.config import FilamentConfig, ProposalConfig
from cs_features.proposals.residual import residual_boxes
from cs_features.proposals.union import PROPOSAL_SOURCES, Proposals, finalize_boxes, propose, union_proposals
from cs_features.proposals.weak_labels import weak_labels

__all__ = ["PROPOSAL_SOURCES", "FilamentConfig", "ProposalConfig", "Proposals", "finalize_boxes", "propose",
           "residual_boxes", "union_proposals", "weak_labels"]
