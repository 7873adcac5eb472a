"""The JW audits (SPEC §3), each written for one instance and vmapped over a batch.

- ``gradient_importance``: |Σ_d g·e| with attention held fixed;
- ``leave_one_out``: output change when a token is deleted;
- ``permutation_median_tvd``: output change when attention is shuffled;
- ``adversarial_search``: the most different attention with (almost) the same output;
- ``BatchAuditor`` runs them on sharded batches; ``run_audit`` over a split, resumably;
- ``rollout`` and ``flow``: Abnar & Zuidema's readings of a transformer's attention maps.
- ``audit_views``: every head, layer mean, rollout and flow of a transformer audited
  (``AttentionView``: one head's or one layer's CLS attention as an auditable model).

Any model with the four functions of ``AuditableModel`` can be audited: ``JWModel``
adapts JW's models, ``TransformerModel`` the transformer (its last block's CLS
attention), and ``auditable_model(config)`` picks between them; ``flax_model`` adapts a
user's own Flax model (linen or nnx), its code untouched.
"""

from attn_audit.audits.adversarial import AdversarySettings, adversarial_search
from attn_audit.audits.engine import AUDITS, BatchAuditor, checked_audits
from attn_audit.audits.flax_model import FlaxModel, FlaxTransformerModel, flax_model
from attn_audit.audits.gradient import gradient_importance
from attn_audit.audits.loo import delete_position, leave_one_out
from attn_audit.audits.permutation import (
    permutation_median_tvd,
    permutation_tvds,
    permute_real_tokens,
)
from attn_audit.audits.protocol import AuditableModel, JWModel
from attn_audit.audits.runner import AuditOptions, run_audit, run_audit_corpus
from attn_audit.audits.transformer_model import TransformerModel, auditable_model
from attn_audit.audits.views import AttentionView, ViewAuditor, audit_views, view_labels

__all__ = [
    "AUDITS", "AdversarySettings", "AuditOptions", "AuditableModel", "BatchAuditor",
    "FlaxModel", "FlaxTransformerModel", "JWModel", "TransformerModel", "adversarial_search",
    "auditable_model", "checked_audits", "delete_position", "flax_model",
    "gradient_importance", "leave_one_out", "permutation_median_tvd", "permutation_tvds",
    "permute_real_tokens", "run_audit", "run_audit_corpus",
]  # fmt: skip
__all__ += ["AttentionView", "ViewAuditor", "audit_views", "view_labels"]
