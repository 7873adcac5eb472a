"""Runs the explainers on batches: each written for one instance, vmapped, jitted once per shape.

Every explainer is a program of its own per batch shape (``BatchExplainer.programs``),
so that two threads compile them side by side and the summary can give each its own
compile and run seconds. ``BatchExplainer`` is a ``batch_engine.BatchEngine``: the batch is
sharded over the local devices, and randomness is per instance (``fold_in(role_key, index)``).
Perturbation explainers evaluate many coalitions per instance; they run
``coalitions_per_step`` of them at a time so that a step holds at most
``ExplainerSettings.max_sequence_positions`` (sequence, position) pairs.
"""

import dataclasses
import functools

import jax
import numpy as np

from attn_audit.audits.engine import predict_batch
from attn_audit.audits.flow import attention_flow_batch
from attn_audit.audits.gradient import gradient_importance
from attn_audit.batch_engine import BatchEngine, ProgramCall
from attn_audit.data.vocab import UNK
from attn_audit.evaluations import az
from attn_audit.explainers.gradients import (
    IG_RULES,
    grad_input,
    grad_l2,
    integrated_gradients,
    integrated_gradients_of_batch,
)
from attn_audit.explainers.lime_text import lime, lime_of_batch
from attn_audit.explainers.occlusion import occlusion, occlusion_of_batch
from attn_audit.explainers.perturbation import check_removal
from attn_audit.explainers.random_ranking import random_scores
from attn_audit.explainers.shapley import (
    MAX_EXACT_PLAYERS,
    kernel_shap,
    kernel_shap_of_batch,
    shapley_exact,
    shapley_exact_of_batch,
    shapley_sampling,
    shapley_sampling_of_batch,
)
from attn_audit.models import is_real_token

EXPLAINERS = (
    "attention", "attention_rollout", "attention_flow", "gradient", "grad_l2", "grad_input",
    "integrated_gradients", "occlusion", "shapley_exact", "shapley_sampling", "kernel_shap",
    "lime", "random",
)  # fmt: skip
# Readings of every block's attention (AZ, SPEC §5): models with ``attention_maps`` only.
MAP_EXPLAINERS = ("attention_rollout", "attention_flow")
# Exact Shapley costs 2^min(n, 16) forward passes per instance: asked for by name only.
DEFAULT_EXPLAINERS = tuple(
    name for name in EXPLAINERS if name != "shapley_exact" and name not in MAP_EXPLAINERS
)
# The explainers that draw random numbers, each from its own role key.
RANDOM_EXPLAINERS = ("shapley_sampling", "kernel_shap", "lime", "random")


def checked_explainers(names) -> tuple[str, ...]:
    """The explainers ``names`` asks for, in ``EXPLAINERS`` order; unknown ones are an error."""
    unknown = sorted(set(names) - set(EXPLAINERS))
    if unknown:
        raise ValueError(f"Unknown explainers {unknown}; choose from {list(EXPLAINERS)}.")
    if not names:
        raise ValueError(f"No explainer asked for; choose from {list(EXPLAINERS)}.")
    return tuple(name for name in EXPLAINERS if name in names)


@dataclasses.dataclass(frozen=True)
class ExplainerSettings:
    """How the explainers run (SPEC §7); hashable, a static argument of the programs.

    Attributes:
      mask_token_id: the id that masks a token (UNK of attn_audit's vocabularies).
      removal: ``"mask"`` or ``"delete"``, for occlusion, Shapley, KernelSHAP and LIME.
      ig_points, ig_rule: integrated gradients' quadrature (``gradients.IG_RULES``).
      shapley_max_tokens: exact Shapley only for instances with at most this many tokens.
      shapley_permutations: orders per instance for sampled Shapley (even: antithetic pairs).
      kernel_samples: coalitions per instance for KernelSHAP; lime_samples: LIME's samples.
      max_sequence_positions: memory budget, (sequence, position) pairs per step.
    """

    mask_token_id: int = UNK
    removal: str = "mask"
    ig_points: int = 50
    ig_rule: str = "gausslegendre"
    shapley_max_tokens: int = MAX_EXACT_PLAYERS
    shapley_permutations: int = 20
    kernel_samples: int = 500
    lime_samples: int = 1000
    # Measured on SST's BiLSTM (2-core CPU, width 24): 2^13 runs sampled Shapley, LIME and
    # IG 25-35% faster than 2^18, whose steps spill out of the caches.
    max_sequence_positions: int = 2**13

    def __post_init__(self):
        check_removal(self.removal)
        if self.ig_rule not in IG_RULES:
            raise ValueError(f"Unknown ig_rule {self.ig_rule!r}; choose from {list(IG_RULES)}.")
        minimum = {"ig_points": 2, "shapley_permutations": 4, "kernel_samples": 1,
                   "lime_samples": 2, "max_sequence_positions": 1, "mask_token_id": 0,
                   "shapley_max_tokens": 1}  # fmt: skip
        for name, least in minimum.items():
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be at least {least}, got {getattr(self, name)}.")
        if self.shapley_max_tokens > 20:
            raise ValueError(
                f"shapley_max_tokens={self.shapley_max_tokens} means 2^"
                f"{self.shapley_max_tokens} forward passes per instance; use at most 20."
            )
        if self.shapley_permutations % 2:
            raise ValueError(
                "shapley_permutations must be even (antithetic pairs), "
                f"got {self.shapley_permutations}."
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def coalitions_per_step(budget: int, batch_size: int, num_positions: int) -> int:
    """Coalitions per instance per step, so that ``B · chunk · T`` stays within ``budget``."""
    return max(1, budget // (batch_size * num_positions))


def explain_instance(model, params, instance, key, explainer: str, settings, chunk) -> dict:
    """One explainer on one instance: ``{"scores": [T], ...}`` (see ``BatchExplainer``)."""
    mask_id, removal = settings.mask_token_id, settings.removal
    if explainer == "attention_rollout":  # the last block's CLS row of the rollout
        maps = model.attention_maps(params, instance)
        return {"scores": az.layer_relevance(maps, instance["length"])["rollout"][-1]}
    if explainer == "attention_flow":  # max flow runs on the host (BatchExplainer.__call__)
        return {"maps": model.attention_maps(params, instance)}
    if explainer == "gradient":
        return {"scores": gradient_importance(model, params, instance)}
    if explainer == "grad_l2":
        return {"scores": grad_l2(model, params, instance)}
    if explainer == "grad_input":
        return {"scores": grad_input(model, params, instance)}
    if explainer == "integrated_gradients":
        scores, gap = integrated_gradients(
            model, params, instance, mask_id, settings.ig_points, settings.ig_rule, chunk
        )
        return {"scores": scores, "completeness_gap": gap}
    if explainer == "occlusion":
        return {"scores": occlusion(model, params, instance, mask_id, removal, chunk)}
    if explainer == "shapley_exact":
        scores, done = shapley_exact(
            model, params, instance, mask_id, removal, settings.shapley_max_tokens, chunk
        )
        return {"scores": scores, "done": done}
    if explainer == "shapley_sampling":
        scores, error = shapley_sampling(
            model, params, instance, key, mask_id, settings.shapley_permutations, removal, chunk
        )
        return {"scores": scores, "standard_error": error}
    if explainer == "kernel_shap":
        scores = kernel_shap(
            model, params, instance, key, mask_id, settings.kernel_samples, removal, chunk
        )
        return {"scores": scores}
    if explainer == "lime":
        scores = lime(model, params, instance, key, mask_id, settings.lime_samples, removal, chunk)
        return {"scores": scores}
    if explainer == "random":
        return {"scores": random_scores(instance, key)}
    raise ValueError(f"No program for explainer {explainer!r}.")


# Explainers run over the whole batch (``*_of_batch``): only each row's real players'
# coalitions (IG: the points of the rows with real tokens) are evaluated, not those of every
# padded slot and padding row, in one flat vmap per step (a vmap over rows of a vmap over
# coalitions ran 1.6-1.7x slower for KernelSHAP and LIME on XLA:CPU).
WHOLE_BATCH_EXPLAINERS = (
    "integrated_gradients", "occlusion", "shapley_exact", "shapley_sampling", "kernel_shap",
    "lime",
)  # fmt: skip


def explain_whole_batch(model, params, instances, keys, explainer: str, settings, per_step):
    """``explain_instance`` of every row, for ``WHOLE_BATCH_EXPLAINERS`` (equal to it, tested):
    the batch's needed coalitions run ``per_step`` at a time."""
    mask_id, removal = settings.mask_token_id, settings.removal
    if explainer == "integrated_gradients":
        scores, gap = integrated_gradients_of_batch(
            model, params, instances, mask_id, settings.ig_points, settings.ig_rule, per_step
        )
        return {"scores": scores, "completeness_gap": gap}
    if explainer == "occlusion":
        return {"scores": occlusion_of_batch(model, params, instances, mask_id, removal, per_step)}
    if explainer == "shapley_exact":
        scores, done = shapley_exact_of_batch(
            model, params, instances, mask_id, removal, settings.shapley_max_tokens, per_step
        )
        return {"scores": scores, "done": done}
    if explainer == "shapley_sampling":
        scores, error = shapley_sampling_of_batch(
            model, params, instances, keys, mask_id, settings.shapley_permutations, removal,
            per_step,
        )  # fmt: skip
        return {"scores": scores, "standard_error": error}
    if explainer == "kernel_shap":
        scores = kernel_shap_of_batch(
            model, params, instances, keys, mask_id, settings.kernel_samples, removal, per_step
        )
        return {"scores": scores}
    if explainer == "lime":
        scores = lime_of_batch(
            model, params, instances, keys, mask_id, settings.lime_samples, removal, per_step
        )
        return {"scores": scores}
    raise ValueError(f"No whole-batch program for explainer {explainer!r}.")


@functools.partial(jax.jit, static_argnames=("model", "explainer", "settings", "chunk"))
def explain_batch(model, params, instances, keys, explainer, settings, chunk=None):
    """``explain_instance`` over a batch: a dict of ``[B, ...]`` arrays. ``chunk``: coalitions
    per instance and step (``WHOLE_BATCH_EXPLAINERS``: ``B · chunk`` per step)."""
    if explainer in WHOLE_BATCH_EXPLAINERS:
        rows = instances["token_ids"].shape[0]
        return explain_whole_batch(
            model, params, instances, keys, explainer, settings, chunk and rows * chunk
        )
    return jax.vmap(
        lambda instance, key: explain_instance(
            model, params, instance, key, explainer, settings, chunk
        )
    )(instances, keys)


def _last_block_flow(maps: np.ndarray, batch: dict) -> np.ndarray:
    """``[B, T]``: attention flow into the last block's CLS node (``az.flow_relevance``), on the
    real tokens of the batch's real rows (max flow in scipy, on the host)."""
    lengths, rows = batch["lengths"], np.flatnonzero(batch["index"] >= 0)
    flows = np.zeros(maps.shape[0:1] + maps.shape[-1:], np.float32)
    if rows.size:
        found = attention_flow_batch(maps[rows], lengths[rows], row=0)[:, -1, :]
        real = is_real_token(np.arange(maps.shape[-1])[None, :], lengths[rows][:, None])
        flows[rows] = np.where(real, found, 0.0)
    return flows


class BatchExplainer(BatchEngine):
    """Runs the chosen explainers on batches, sharded over the local devices (a
    ``BatchEngine``).

    Programs: ``"prediction"`` (the forward pass: probabilities and attention, which is
    the ``attention`` explainer) and one per other explainer.

    Args:
      model: an ``AuditableModel``; params: its parameters.
      explainers: a subset of ``EXPLAINERS``.
      key: the run's key, split here into one role per random explainer.
      settings: ``ExplainerSettings``.

    ``seconds`` accumulates each program's run time over the batches.
    """

    def __init__(self, model, params, explainers=DEFAULT_EXPLAINERS, key=None, settings=None):
        self.model = model
        self.explainers = checked_explainers(explainers)
        needs_maps = [name for name in self.explainers if name in MAP_EXPLAINERS]
        if needs_maps and not hasattr(model, "attention_maps"):
            raise ValueError(
                f"{needs_maps} read every block's attention: they need a transformer (a model "
                "with attention_maps(params, instance)); leave them out for this model."
            )
        self.settings = ExplainerSettings() if settings is None else settings
        programs = ("prediction",) + tuple(e for e in self.explainers if e != "attention")
        super().__init__(params, programs)
        key = jax.random.key(0) if key is None else key
        self.role_keys = dict(
            zip(RANDOM_EXPLAINERS, jax.random.split(key, len(RANDOM_EXPLAINERS)), strict=True)
        )
        del key  # not used anymore

    def program_call(self, batch: dict, program: str, params) -> ProgramCall:
        """``predict_batch`` for ``"prediction"``, else ``explain_batch`` of one explainer."""
        instances = self.instances(batch)
        if program == "prediction":
            return ProgramCall(predict_batch, {"model": self.model},
                               {"params": params, "instances": instances})  # fmt: skip
        rows, num_positions = batch["token_ids"].shape
        static = {
            "model": self.model, "explainer": program, "settings": self.settings,
            "chunk": coalitions_per_step(self.settings.max_sequence_positions, rows, num_positions),
        }  # fmt: skip
        keys = self.keys(self.role_keys.get(program, self.role_keys["random"]), batch)
        return ProgramCall(explain_batch, static,
                           {"params": params, "instances": instances, "keys": keys})  # fmt: skip

    def __call__(self, batch: dict, params=None) -> dict[str, np.ndarray]:
        """Explains one batch; host arrays with a leading batch axis.

        ``params`` (from ``replicated``) replaces the model's parameters for this call, with
        the same compiled programs (model randomisation, ``faithfulness``).

        Keys: ``probabilities [B, C]``, ``attention [B, T]``, and per explainer e
        ``e [B, T]`` (its scores) plus ``integrated_gradients_completeness_gap [B]``,
        ``shapley_exact_done [B]``, ``shapley_sampling_standard_error [B, T]``.
        """
        results = {}
        for program in self.programs:
            found = self.run(batch, program, params)
            if program == "prediction":
                results.update(found)
                continue
            if program == "attention_flow":
                found = {"scores": _last_block_flow(found["maps"], batch)}
            results[program] = found.pop("scores")
            results.update({f"{program}_{name}": value for name, value in found.items()})
        return results
