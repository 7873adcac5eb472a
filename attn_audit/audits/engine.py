"""The audits as a batch job: each audit vmapped over instances, jitted once per shape.

A batch is the dict of ``attn_audit.data.batches`` (``token_ids [B, T]``,
``lengths [B]``, ``index [B]``, ...). Every audit is a jitted function of its
own; ``BatchAuditor`` (a ``batch_engine.BatchEngine``) runs the chosen ones as at most two
combined programs (``audit_batch``, one compilation each per bucket shape: ``PROGRAMS``),
sharded over the local devices. Randomness is per instance: the key of instance ``i`` is
``fold_in(role_key, i)``, so results do not depend on batching or sharding.
"""

import concurrent.futures
import functools

import jax
import numpy as np

from attn_audit.audits.adversarial import JW_ADVERSARY, adversarial_search
from attn_audit.audits.gradient import gradient_importance
from attn_audit.audits.loo import leave_one_out_of_batch, leave_one_out_of_pairs
from attn_audit.audits.permutation import NUM_PERMUTATIONS, permutation_median_tvd
from attn_audit.batch_engine import BatchEngine, ProgramCall

AUDITS = ("gradient", "loo", "permutation", "adversarial")
# The audits that re-run the encoder, and those that only decode other α on fixed states:
# one program each, of about the same compile time, so that two cores compile a shape's
# programs side by side (``BatchAuditor.programs``).
PROGRAMS = (("gradient", "loo"), ("permutation", "adversarial"))


def checked_audits(names) -> tuple[str, ...]:
    """The audits ``names`` asks for, in ``AUDITS`` order; a ValueError names any unknown one."""
    unknown = sorted(set(names) - set(AUDITS))
    if unknown:
        raise ValueError(f"Unknown audits {unknown}; choose from {list(AUDITS)}.")
    return tuple(a for a in AUDITS if a in names)


@functools.partial(jax.jit, static_argnames=("model",))
def predict_batch(model, params, instances):
    """``{"attention": [B, T], "probabilities": [B, C]}``."""

    def one(instance):
        embedded = model.embed(params, instance)
        states = model.encode(params, instance, embedded)
        alpha = model.attention(params, instance, states)
        return {"attention": alpha, "probabilities": model.decode(params, instance, states, alpha)}

    return jax.vmap(one)(instances)


@functools.partial(jax.jit, static_argnames=("model",))
def gradient_batch(model, params, instances):
    """Gradient importance ``[B, T]``."""
    return jax.vmap(lambda instance: gradient_importance(model, params, instance))(instances)


# Leave-one-out runs B·T variants of length T; beyond this many (variant, position) pairs per
# step it processes the deletion positions in chunks (about 1 GB for a BiLSTM of width 256).
LOO_VARIANT_POSITIONS_PER_STEP = 2**18


def loo_positions_per_chunk(batch_size: int, num_positions: int) -> int | None:
    """Deletion positions per step so that ``B · chunk · T`` stays within the budget."""
    if batch_size * num_positions * num_positions <= LOO_VARIANT_POSITIONS_PER_STEP:
        return None
    return max(1, LOO_VARIANT_POSITIONS_PER_STEP // (batch_size * num_positions))


# A batch's real deletions run in about this many steps (``leave_one_out_of_batch``): the
# last step is partly empty, so more steps waste less, and fewer keep the matmuls large.
LOO_STEPS_PER_BATCH = 16


def loo_variants_per_step(batch_size: int, num_positions: int) -> int:
    """Deletion variants per step of ``leave_one_out_of_batch``: a 16th of the batch's
    ``B · (T − 2)`` candidates, at most ``LOO_VARIANT_POSITIONS_PER_STEP / T``."""
    candidates = batch_size * max(num_positions - 2, 1)
    within_budget = max(1, LOO_VARIANT_POSITIONS_PER_STEP // num_positions)
    return min(within_budget, -(-candidates // LOO_STEPS_PER_BATCH))


# The real pairs of deletions of a batch with the deletion shortcut run in about this many steps
# (``leave_one_out_of_pairs``): fewer, larger steps waste more of the partly empty last one.
LOO_PAIR_STEPS_PER_BATCH = 2


def loo_pairs_per_step(batch_size: int, num_positions: int) -> int:
    """Pairs of deletions per step of ``leave_one_out_of_pairs``: a
    ``LOO_PAIR_STEPS_PER_BATCH``-th of the batch's ``B · ⌈(T − 2) / 2⌉`` candidate pairs, at
    most ``LOO_VARIANT_POSITIONS_PER_STEP / 2T``."""
    candidates = batch_size * max((num_positions - 1) // 2, 1)
    within_budget = max(1, LOO_VARIANT_POSITIONS_PER_STEP // (2 * num_positions))
    return min(within_budget, -(-candidates // LOO_PAIR_STEPS_PER_BATCH))


def uses_deletion_shortcut(model, params, instances) -> bool:
    """Whether ``model.deletion_states`` supplies the variants' states (decided while
    tracing: the shortcut is a Python function or None; the traced calls are dropped)."""
    shortcut = getattr(model, "deletion_states", None)
    if shortcut is None:
        return False
    instance = jax.tree.map(lambda leaf: leaf[0], instances)
    embedded = model.embed(params, instance)
    states = model.encode(params, instance, embedded)
    return shortcut(params, instance, embedded, states) is not None


@functools.partial(jax.jit, static_argnames=("model", "positions_per_chunk"))
def loo_batch(model, params, instances, positions_per_chunk=None):
    """Leave-one-out output changes ``[B, T]``.

    Models with a deletion shortcut (JW's BiLSTM and CNN) run each row's real pairs of
    deletions (``leave_one_out_of_pairs``); others re-run the whole model per real deletion
    (``leave_one_out_of_batch``). Both equal ``leave_one_out`` of each row (tested).
    """
    rows, num_positions = instances["token_ids"].shape
    if not uses_deletion_shortcut(model, params, instances):
        return leave_one_out_of_batch(
            model, params, instances, loo_variants_per_step(rows, num_positions)
        )
    if positions_per_chunk is None:
        pairs_per_step = loo_pairs_per_step(rows, num_positions)
    else:  # the same variants a step as positions_per_chunk deletions of every row
        pairs_per_step = max(rows * positions_per_chunk // 2, 1)
    return leave_one_out_of_pairs(model, params, instances, pairs_per_step)


@functools.partial(jax.jit, static_argnames=("model", "num_permutations"))
def permutation_batch(model, params, instances, keys, num_permutations=NUM_PERMUTATIONS):
    """Median permutation TVD ``[B]``; ``keys [B]`` one per instance."""
    return jax.vmap(
        lambda instance, key: permutation_median_tvd(model, params, instance, key, num_permutations)
    )(instances, keys)


@functools.partial(jax.jit, static_argnames=("model", "settings"))
def adversarial_batch(model, params, instances, keys, settings=JW_ADVERSARY):
    """``adversarial_search`` vmapped: a dict of ``[B, ...]`` arrays."""
    return jax.vmap(
        lambda instance, key: adversarial_search(model, params, instance, key, settings)
    )(instances, keys)


@functools.partial(
    jax.jit,
    static_argnames=("model", "audits", "positions_per_chunk", "num_permutations", "settings"),
)
def audit_batch(
    model, params, instances, permutation_keys, adversarial_keys, audits,
    positions_per_chunk=None, num_permutations=NUM_PERMUTATIONS, settings=JW_ADVERSARY,
):  # fmt: skip
    """Every audit in ``audits`` of one batch as ONE program (the functions above, combined).

    One program per batch shape instead of five: a warm run loads a quarter as many, and XLA
    shares the original forward pass between the audits. Returns the keys of
    ``BatchAuditor.__call__``.
    """
    results = dict(predict_batch(model, params, instances))
    if "gradient" in audits:
        results["gradient"] = gradient_batch(model, params, instances)
    if "loo" in audits:
        results["loo"] = loo_batch(model, params, instances, positions_per_chunk)
    if "permutation" in audits:
        results["permutation_median_tvd"] = permutation_batch(
            model, params, instances, permutation_keys, num_permutations
        )
    if "adversarial" in audits:
        found = adversarial_batch(model, params, instances, adversarial_keys, settings)
        results.update({f"adversarial_{name}": value for name, value in found.items()})
    return results


class BatchAuditor(BatchEngine):
    """Runs the chosen audits on batches, sharded over the local devices (a ``BatchEngine``).

    Args:
      model: an ``AuditableModel``.
      params: its parameters (replicated on every device once, here).
      audits: a subset of ``AUDITS``.
      key: the audit run's key; split here into one role per random audit.
      adversary: the adversarial search settings.
      num_permutations: shuffles per instance in the permutation test.
      program_cache: optional ``exported.ProgramCache``: the programs are traced once and
        kept on disk, so a later process skips tracing (same results, tested).
    """

    def __init__(
        self, model, params, audits=AUDITS, key=None, adversary=JW_ADVERSARY,
        num_permutations=NUM_PERMUTATIONS, program_cache=None,
    ):  # fmt: skip
        self.model = model
        self.audits = checked_audits(audits)
        self.adversary = adversary
        self.num_permutations = num_permutations
        super().__init__(params, audit_programs(self.audits), program_cache)
        key = jax.random.key(0) if key is None else key
        self.permutation_key, self.adversarial_key = jax.random.split(key)
        del key  # not used anymore

    def program_call(self, batch: dict, program: tuple[str, ...], params) -> ProgramCall:
        """``audit_batch`` of the audits in ``program``."""
        static = {
            "model": self.model, "audits": program,
            "positions_per_chunk": loo_positions_per_chunk(*batch["token_ids"].shape),
            "num_permutations": self.num_permutations, "settings": self.adversary,
        }  # fmt: skip
        dynamic = {
            "params": params, "instances": self.instances(batch),
            "permutation_keys": self.keys(self.permutation_key, batch),
            "adversarial_keys": self.keys(self.adversarial_key, batch),
        }  # fmt: skip
        return ProgramCall(audit_batch, static, dynamic)

    def __call__(self, batch: dict) -> dict[str, np.ndarray]:
        """Audits one batch; returns host arrays with a leading batch axis.

        Keys: ``attention [B, T]``, ``probabilities [B, C]`` and, per audit run,
        ``gradient [B, T]``, ``loo [B, T]``, ``permutation_median_tvd [B]``,
        ``adversarial_*`` (see ``adversarial_search``).
        """
        # The programs are independent: run side by side, one thread each (XLA:CPU runs two
        # programs dispatched from one thread one after the other). SST's 55 test batches on
        # 2 cores: 8.1 s one after the other, 6.8 s side by side.
        found = list(_PROGRAM_THREADS.map(lambda program: self.run(batch, program), self.programs))
        results = {}
        for one in found:
            results = {**one, **results}  # attention and probabilities: the first program's
        return results


def audit_programs(audits: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The audits of each compiled program: ``PROGRAMS`` restricted to ``audits`` (one empty
    program, the predictions alone, when none is asked for)."""
    chosen = (tuple(a for a in group if a in audits) for group in PROGRAMS)
    return tuple(group for group in chosen if group) or ((),)


# Threads that run one batch's programs side by side (``BatchAuditor.__call__``).
_PROGRAM_THREADS = concurrent.futures.ThreadPoolExecutor(len(PROGRAMS), "audit-program")
