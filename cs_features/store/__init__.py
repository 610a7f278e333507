"""The feature store: LanceDB tables with explicit schemas (``schemas``), the database and its
upserts (``db``), Arrow conversions (``arrow``), and inspection, history, tags and restore (``admin``).
"""

from cs_features.store.schemas import (  # noqa: F401
    STORE_SCHEMA_VERSION, PRIMARY_KEY, BLOB, BOX_TYPE, FRAMES, INGEST_LOG, ERRORS, META, PROPOSALS_PREFIX,
    timestamp_type, frames_schema, proposals_schema, ingest_log_schema, errors_schema, meta_schema,
    PRIMARY_KEYS, encoder_slug, proposals_table_name,
)
from cs_features.store.arrow import (  # noqa: F401
    vectors_to_arrow, fixed_list_to_numpy,
)
from cs_features.store.db import (  # noqa: F401
    now, FeatureStore, sql_quote,
)
from cs_features.store.admin import (  # noqa: F401
    store_info, store_history, list_tags, tag_store, restore_store, proposal_recall,
)
