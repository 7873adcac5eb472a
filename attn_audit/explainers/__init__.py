"""Explainers that attention is judged against (SPEC §7), each for one instance, then vmapped.

- ``grad_input``, ``grad_l2`` (Bastings et al.'s Grad-L2) and ``integrated_gradients``
  (``gradients``), through the whole model;
- ``occlusion``: the output change when a token is masked (or deleted);
- ``shapley_exact``, ``shapley_sampling``, ``kernel_shap`` (``shapley``);
- ``lime``: LIME's text explainer, its ridge solved in JAX;
- ``random_scores``: the seeded floor;
- attention and JW's gradient come from the model and ``audits.gradient``; a transformer's
  ``attention_rollout`` and ``attention_flow`` (AZ) from ``evaluations.az``.

``BatchExplainer`` runs them as one program per explainer and batch shape;
``run_explain`` over a split, resumably.
"""

from attn_audit.explainers.engine import (
    DEFAULT_EXPLAINERS,
    EXPLAINERS,
    MAP_EXPLAINERS,
    BatchExplainer,
    ExplainerSettings,
    checked_explainers,
    explain_batch,
)
from attn_audit.explainers.gradients import (
    grad_input,
    grad_l2,
    integrated_gradients,
    integration_points,
)
from attn_audit.explainers.lime_text import lime, weighted_ridge
from attn_audit.explainers.occlusion import occlusion
from attn_audit.explainers.perturbation import coalition_values, remove_tokens
from attn_audit.explainers.random_ranking import random_scores
from attn_audit.explainers.runner import ExplainOptions, run_explain
from attn_audit.explainers.shapley import (
    kernel_shap,
    kernel_shap_solution,
    shapley_exact,
    shapley_from_values,
    shapley_kernel_weights,
    shapley_sampling,
)

__all__ = [
    "DEFAULT_EXPLAINERS", "EXPLAINERS", "MAP_EXPLAINERS", "BatchExplainer", "ExplainOptions",
    "ExplainerSettings",
    "checked_explainers", "coalition_values", "explain_batch", "grad_input", "grad_l2",
    "integrated_gradients", "integration_points", "kernel_shap", "kernel_shap_solution", "lime",
    "occlusion", "random_scores", "remove_tokens", "run_explain", "shapley_exact",
    "shapley_from_values", "shapley_kernel_weights", "shapley_sampling", "weighted_ridge",
]  # fmt: skip
