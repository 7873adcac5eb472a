"""Runs the faithfulness metrics on batches: one program per metric and batch shape.

``BatchFaithfulness`` takes every explainer's scores of a batch (from the explainer
records) and runs ERASER's curves (``eraser``) and the decision flips (``flip``), each
written for one instance and vmapped, all explainers in one program.
``BatchRandomisation`` re-runs the explainers (``explainers.BatchExplainer``, same
compiled programs) on the model with blocks re-initialised (``randomisation``) and
gives Spearman's ρ between the original and the randomised absolute scores.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit import models, stats
from attn_audit.batch_engine import BatchEngine, ProgramCall
from attn_audit.data.vocab import UNK
from attn_audit.explainers.engine import BatchExplainer, coalitions_per_step
from attn_audit.explainers.perturbation import REMOVALS, check_removal
from attn_audit.faithfulness.eraser import ERASER_REMOVALS, eraser_of_batch
from attn_audit.faithfulness.flip import decision_flip_of_batch
from attn_audit.faithfulness.randomisation import randomisation_variants, randomised_params
from attn_audit.faithfulness.ranking import PERCENTS
from attn_audit.models import real_token_mask

METRIC_PROGRAMS = ("eraser", "flip")


@dataclasses.dataclass(frozen=True)
class FaithfulnessSettings:
    """How the metrics run (SPEC §8); hashable, a static argument of the programs.

    Attributes:
      mask_token_id: the id that masks a token.
      removals: ERASER's removals (deletion is ERASER's rule; masking the other reading);
        the summary ranks the explainers by the first.
      flip_removal: how decision flips remove tokens.
      percents: ERASER's k, integer percents.
      max_sequence_positions: memory budget, (sequence, position) pairs per step.
    """

    mask_token_id: int = UNK
    removals: tuple[str, ...] = ERASER_REMOVALS
    flip_removal: str = "delete"
    percents: tuple[int, ...] = PERCENTS
    max_sequence_positions: int = 2**13

    def __post_init__(self):
        if not self.removals:
            raise ValueError(f"removals is empty; choose from {list(REMOVALS)}.")
        for removal in (*self.removals, self.flip_removal):
            check_removal(removal)
        if not self.percents or any(not 0 < p <= 100 for p in self.percents):
            raise ValueError(f"percents must be in 1 … 100, got {self.percents}.")
        if self.max_sequence_positions < 1 or self.mask_token_id < 0:
            raise ValueError("max_sequence_positions must be ≥ 1 and mask_token_id ≥ 0.")

    def to_dict(self) -> dict:
        content = dataclasses.asdict(self)
        content.update(removals=list(self.removals), percents=list(self.percents))
        return content


@functools.partial(jax.jit, static_argnames=("model", "metric", "settings", "chunk"))
def metric_batch(model, params, instances, scores, metric, settings, chunk=None):
    """One metric (``"eraser"`` or ``"flip"``) over a batch; ``scores [B, X, T]``. The batch's
    coalitions run ``B · chunk`` at a time in one flat ``vmap`` (``eraser_of_batch``,
    ``decision_flip_of_batch``; each equal to the per-instance metric, tested)."""
    per_step = chunk and instances["token_ids"].shape[0] * chunk
    if metric == "eraser":
        return eraser_of_batch(
            model, params, instances, scores, settings.mask_token_id, settings.removals,
            settings.percents, per_step,
        )  # fmt: skip
    return decision_flip_of_batch(
        model, params, instances, scores, settings.flip_removal, settings.mask_token_id, per_step
    )


def scores_on_positions(records: dict, batch: dict, explainers) -> tuple[np.ndarray, np.ndarray]:
    """The explainers' scores of a batch laid out on positions.

    Args:
      records: instance index → explainer record (``explainers.explanation_records``).
      batch: a batch of ``data.batches``.
      explainers: the explainers, in order.

    Returns:
      ``(scores [B, X, T] float32, available [B, X] bool)``: an explainer that gave no
      scores for an instance (exact Shapley past its limit) or a padding row is unavailable
      and gets zeros.
    """
    rows, num_positions = batch["token_ids"].shape
    scores = np.zeros((rows, len(explainers), num_positions), np.float32)
    available = np.zeros((rows, len(explainers)), bool)
    for row in np.flatnonzero(batch["index"] >= 0):
        record = records[int(batch["index"][row])]
        num_tokens = int(batch["lengths"][row]) - 2
        for column, name in enumerate(explainers):
            values = record.get(name)
            if values is None:
                continue
            if len(values) != num_tokens:
                raise ValueError(
                    f"Instance {record['id']}: {name} has {len(values)} scores for "
                    f"{num_tokens} tokens; the explanations come from another vocabulary or "
                    "data. Delete them and run again."
                )
            scores[row, column, 1 : 1 + num_tokens] = values
            available[row, column] = True
    return scores, available


class BatchFaithfulness(BatchEngine):
    """ERASER and decision flips of the explainers' scores, batch by batch (a
    ``BatchEngine``).

    Args:
      model: an ``AuditableModel``; params: its parameters.
      explainers: the explainers whose scores to judge.
      records: instance index → explainer record holding those scores.
      settings: ``FaithfulnessSettings``.
      programs: the metrics to run, from ``METRIC_PROGRAMS`` (none: scores only).

    ``seconds`` accumulates each program's run time.
    """

    def __init__(
        self, model, params, explainers, records: dict, settings=None, programs=METRIC_PROGRAMS
    ):
        unknown = sorted(set(programs) - set(METRIC_PROGRAMS))
        if unknown:
            raise ValueError(f"Unknown metrics {unknown}; choose from {list(METRIC_PROGRAMS)}.")
        self.model = model
        self.explainers = tuple(explainers)
        self.records = records
        self.settings = FaithfulnessSettings() if settings is None else settings
        super().__init__(params, tuple(m for m in METRIC_PROGRAMS if m in programs))

    def program_call(self, batch: dict, program: str, params) -> ProgramCall:
        """``metric_batch`` of one metric on the batch's scores (``scores_on_positions``)."""
        rows, num_positions = batch["token_ids"].shape
        coalitions = len(self.explainers) * (
            2 * len(self.settings.percents) if program == "eraser" else num_positions - 2
        )
        chunk = coalitions_per_step(self.settings.max_sequence_positions, rows, num_positions)
        static = {"model": self.model, "metric": program, "settings": self.settings,
                  "chunk": min(chunk, coalitions)}  # fmt: skip
        scores = self.per_batch(
            batch, "scores", lambda: self.sharded(self._scores_on_positions(batch)[0])
        )
        dynamic = {"params": params, "instances": self.instances(batch), "scores": scores}
        return ProgramCall(metric_batch, static, dynamic)

    def __call__(self, batch: dict) -> dict[str, np.ndarray]:
        """Host arrays: ``comprehensiveness``/``sufficiency [B, R, X, K]``, ``flip_fraction``,
        ``flipped``, ``top1_flip [B, X]``, and the inputs ``scores [B, X, T]`` and
        ``available [B, X]``."""
        scores, available = self._scores_on_positions(batch)
        return {"scores": scores, "available": available, **super().__call__(batch)}

    def _scores_on_positions(self, batch: dict) -> tuple[np.ndarray, np.ndarray]:
        """``scores_on_positions`` of the batch, read from the records once per batch."""
        return self.per_batch(
            batch, "host scores", lambda: scores_on_positions(self.records, batch, self.explainers)
        )


@jax.jit
def _absolute_rho(original: jax.Array, randomised: jax.Array, lengths: jax.Array) -> jax.Array:
    """``[B, X]`` Spearman ρ of ``|original|`` and ``|randomised|`` ``[B, X, T]`` per explainer."""
    real = jax.vmap(lambda length: real_token_mask(length, original.shape[-1]))(lengths)
    rho = jax.vmap(jax.vmap(stats.spearman_rho, in_axes=(0, 0, None)))
    return rho(jnp.abs(original), jnp.abs(randomised), real)


class BatchRandomisation:
    """The explainers on re-initialised models (``randomisation``), batch by batch.

    Every distinct set of re-initialised blocks is one parameter tree; each is explained
    with the same compiled programs as the trained model (``BatchExplainer``).

    Args:
      model: an ``AuditableModel`` with a ``config`` (``models.init`` re-initialises it).
      params: the trained parameters.
      explainers: a ``BatchExplainer`` over ``params`` (its explainers and settings).
      key: the key of the fresh initialisation.

    ``__call__(batch)`` gives ``rho [B, V, X]`` (V the ``variants``, X the explainers) and
    ``num_tokens [B]``; ``seconds`` accumulates run time per explainer program.
    """

    def __init__(self, model, params, explainers: BatchExplainer, key: jax.Array):
        self.explainer = explainers
        fresh = models.init(key, model.config)
        self.variants = randomisation_variants()
        distinct = sorted(set(self.variants.values()))
        self._params = {
            blocks: explainers.replicated(randomised_params(params, fresh, blocks))
            for blocks in distinct
        }
        self.seconds = dict.fromkeys(self.programs, 0.0)

    @property
    def programs(self) -> tuple[str, ...]:
        return self.explainer.programs

    @property
    def num_devices(self) -> int:
        return self.explainer.num_devices

    def compile(self, batch: dict, program: str | None = None) -> None:
        self.explainer.compile(batch, program)

    def _scores(self, batch: dict, params=None) -> np.ndarray:
        found = self.explainer(batch, params)
        return np.stack([found[name] for name in self.explainer.explainers], axis=1)

    def __call__(self, batch: dict) -> dict[str, np.ndarray]:
        before = dict(self.explainer.seconds)
        original = self._scores(batch)
        rho = {
            blocks: np.asarray(_absolute_rho(original, self._scores(batch, params),
                                             batch["lengths"]))
            for blocks, params in self._params.items()
        }  # fmt: skip
        for program in self.programs:
            self.seconds[program] += self.explainer.seconds[program] - before[program]
        by_variant = np.stack([rho[blocks] for blocks in self.variants.values()], axis=1)
        return {"rho": by_variant, "num_tokens": np.asarray(batch["lengths"]) - 2}
