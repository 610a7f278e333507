"""Similarity search over stored region vectors, so an ambiguous string can be judged against known ones.

- ``space``: the fitted search space (per-dimension standardisation + L2 normalisation, fitted on the
  train split) and the choice of space and encoder to search;
- ``query``: :func:`similar` and :func:`search`, queries by stored proposal, stored frame + box, or
  image + box (embedded by the frame pipeline as ingest did);
- ``index``: the vector and scalar indexes (:func:`build_index`);
- ``sheets``: contact sheets of a result (:func:`similar_sheet`).
"""

from cs_features.search.index import EXACT_BELOW, build_index, has_vector_index
from cs_features.search.query import (
    Neighbour,
    SimilarResult,
    embed_region,
    resolve_frame,
    search,
    similar,
    stems_of,
    stored_frame_image,
)
from cs_features.search.sheets import similar_sheet
from cs_features.search.space import (
    SEARCH_COLUMN,
    SPACES,
    SearchSpace,
    SpaceChoice,
    ensure_search_space,
    fill_search_vectors,
    fit_search_space,
    load_search_space,
    pick_encoder,
    resolve_space,
    search_space_status,
    space_key,
)

__all__ = ["EXACT_BELOW", "SEARCH_COLUMN", "SPACES", "Neighbour", "SearchSpace", "SimilarResult", "SpaceChoice",
           "build_index", "embed_region", "ensure_search_space", "fill_search_vectors", "fit_search_space",
           "has_vector_index", "load_search_space", "pick_encoder", "resolve_frame", "resolve_space", "search",
           "search_space_status", "stems_of",
           "similar", "similar_sheet", "space_key", "stored_frame_image"]
