"""Similarity search over stored region vectors: the fitted search space (``space``), queries
(``query``), the vector and scalar indexes (``index``) and contact sheets (``sheets``).
"""

from cs_features.search.space import (  # noqa: F401
    SEARCH_COLUMN, SPACE_SCHEMA_VERSION, SPACE_KIND, FILL_CHUNK_ROWS, SearchSpace, space_key,
    search_vector_field, load_search_space, SpaceStatus, search_space_status, fit_search_space,
    fill_search_vectors, ensure_search_space,
)
from cs_features.search.query import (  # noqa: F401
    EXACT_BELOW, ROWS_PER_PARTITION, NPROBES, HNSW_EF, REFINE_FACTOR, SCALAR_COLUMNS, SPACES, RESULT_COLUMNS,
    Neighbour, SpaceChoice, SimilarResult, pick_encoder, proposal_vector, embed_region, resolve_space,
    search, build_index, stored_frame_image, similar, similar_sheet,
)
