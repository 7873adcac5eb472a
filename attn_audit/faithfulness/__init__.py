"""Which explanation is faithful? (SPEC §8) Metrics for one instance, then vmapped.

- ``eraser``: ERASER's comprehensiveness and sufficiency at k ∈ {1, 5, 10, 20, 50}%,
  tokens deleted or masked;
- ``flip``: decision flips (Serrano & Smith 2019);
- ``randomisation``: model parameter randomisation (Adebayo et al. 2018), cascading and
  independent, with ``BatchRandomisation`` re-running the explainers;
- ``agreement``: Kendall τ-b and top-20% Jaccard between every pair of explainers;
- ``ranking``: the shared order (score, ties by position) and ``max(1, ⌈k·n⌉)``;
- ``plausibility``: AUPRC, top-k F1 and exact top-k against ground-truth evidence (SPEC §9).

``BatchFaithfulness`` runs the metrics as one program per metric and batch shape;
``run_faithfulness`` over a split, resumably; ``report.faithfulness_summary`` gives every
mean a 95% bootstrap CI.
"""

from attn_audit.faithfulness.agreement import pairwise_agreement, top_jaccard
from attn_audit.faithfulness.engine import (
    METRIC_PROGRAMS,
    BatchFaithfulness,
    BatchRandomisation,
    FaithfulnessSettings,
    metric_batch,
)
from attn_audit.faithfulness.eraser import eraser, rationale_masks
from attn_audit.faithfulness.flip import decision_flip
from attn_audit.faithfulness.plausibility import (
    PLAUSIBILITY_MEASURES,
    batch_plausibility,
    plausibility,
    score_records,
)
from attn_audit.faithfulness.randomisation import (
    BLOCKS,
    blocks_without_parameters,
    parameter_blocks,
    randomisation_variants,
    randomised_params,
)
from attn_audit.faithfulness.ranking import PERCENTS, token_ranks, top_count
from attn_audit.faithfulness.runner import (
    METRICS,
    FaithfulnessOptions,
    checked_metrics,
    run_faithfulness,
)

__all__ = [
    "BLOCKS", "METRICS", "METRIC_PROGRAMS", "PERCENTS", "PLAUSIBILITY_MEASURES",
    "BatchFaithfulness", "batch_plausibility", "plausibility", "score_records",
    "BatchRandomisation", "FaithfulnessOptions", "FaithfulnessSettings",
    "blocks_without_parameters", "checked_metrics",
    "decision_flip", "eraser", "metric_batch", "pairwise_agreement", "parameter_blocks",
    "randomisation_variants", "randomised_params", "rationale_masks", "run_faithfulness",
    "token_ranks", "top_count", "top_jaccard",
]  # fmt: skip
