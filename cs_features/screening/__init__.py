"""Frame screening by the chain: the three stages' evidence per frame (``evidence``), one calibrated frame
score fitted on val from that evidence and its rise over the embryo's quietest frame (``model``), embryo
scores that use the time-lapse (``embryo``), and the training run that compares them with each stage alone
(``run``).
"""

from cs_features.screening.embryo import (  # noqa: F401
    EmbryoScores,
    embryo_scores_over_time,
    persistence_score,
)
from cs_features.screening.evidence import (  # noqa: F401
    EVIDENCE_COLUMNS,
    EvidenceSources,
    build_evidence,
    collect_evidence,
    evidence_schema,
    read_sources,
)
from cs_features.screening.model import (  # noqa: F401
    SCREEN_FEATURES,
    FrameScreen,
    embryo_rise,
    evidence_labels,
    evidence_matrix,
    keep_report,
    screen_features,
)
from cs_features.screening.run import ScreenResult, compare_scores, train_screen  # noqa: F401
