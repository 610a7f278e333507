"""The feature store: LanceDB tables with explicit schemas (``schemas``), the database and its
upserts (``db``), Arrow conversions (``arrow``), and inspection, history, tags and restore (``admin``).
"""

from cs_features.store.admin import (  # noqa: F401
    list_tags,
    proposal_recall,
    restore_store,
    store_history,
    store_info,
    tag_store,
)
from cs_features.store.arrow import (  # noqa: F401
    fixed_list_to_numpy,
    vectors_to_arrow,
)
from cs_features.store.db import (  # noqa: F401
    FeatureStore,
    now,
    require_frames,
    sql_quote,
)
from cs_features.store.schemas import (  # noqa: F401
    ANNOTATIONS,
    BLOB,
    BOX_TYPE,
    ERRORS,
    FRAMES,
    INGEST_LOG,
    META,
    PRIMARY_KEY,
    PRIMARY_KEYS,
    PROPOSALS_PREFIX,
    STORE_SCHEMA_VERSION,
    annotations_schema,
    encoder_slug,
    errors_schema,
    frame_result_fields,
    frames_schema,
    ingest_log_schema,
    meta_schema,
    proposals_schema,
    proposals_table_name,
    timestamp_type,
)
