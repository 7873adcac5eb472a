"""Runs the audits on batches: each audit is vmapped over instances and jitted once per shape.

A batch is the dict of ``attn_audit.data.batches`` (``token_ids [B, T]``,
``lengths [B]``, ``index [B]``, ...). Every audit is a jitted function of its
own; ``BatchAuditor`` runs the chosen ones as at most two combined programs
(``audit_batch``, one compilation each per bucket shape: ``PROGRAMS``). The model is a static
argument, and the batch is sharded over all local devices along a ``data`` mesh
axis while the parameters are replicated, so the same code runs on one CPU,
several host devices, GPUs or TPUs. Randomness is per instance: the key of
instance ``i`` is ``fold_in(role_key, i)``, so results do not depend on batching or sharding.
"""

import concurrent.futures
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from attn_audit.audits.adversarial import JW_ADVERSARY, adversarial_search
from attn_audit.audits.gradient import gradient_importance
from attn_audit.audits.loo import leave_one_out, leave_one_out_of_batch
from attn_audit.audits.permutation import NUM_PERMUTATIONS, permutation_median_tvd

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


def data_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh over every local device, axis ``data``.

    Auto axis type: XLA propagates the batch sharding through the vmapped audits
    (gathers from the replicated embedding included) without annotations.
    """
    return jax.make_mesh(
        (jax.local_device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
    )


def instances_from_batch(batch: dict) -> dict:
    """Per-instance inputs of the audits, each with a leading batch axis."""
    instances = {"token_ids": batch["token_ids"], "length": batch["lengths"]}
    if "question_ids" in batch:
        instances["question_ids"] = batch["question_ids"]
        instances["question_length"] = batch["question_lengths"]
    return instances


@jax.jit
def instance_keys(role_key: jax.Array, index: jax.Array) -> jax.Array:
    """``[B]`` keys ``fold_in(role_key, i)`` of the instances ``index [B]`` (padding rows: 0).

    Jitted: run eagerly, the vmap costs milliseconds of dispatch per batch."""
    return jax.vmap(lambda i: jax.random.fold_in(role_key, i))(jnp.maximum(index, 0))


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


# XLA options of the audit programs, per platform. On CPU, LLVM's optimisation level 1 instead
# of the default: measured on SST's audit (benchmarks/RESULTS.md), the programs compile in
# about a quarter less time, the fixed-state audits run 1.4-2x faster (the default's loop
# optimisations do not pay on their small [B, K, T] arrays) and the others as fast.
COMPILER_OPTIONS = {"cpu": {"xla_backend_optimization_level": 1}}


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

    Models with a deletion shortcut (JW's BiLSTM and CNN): ``leave_one_out`` per row. Others
    re-run the whole model per variant, so only the real deletions run
    (``leave_one_out_of_batch``; equal to the per-row function, tested).
    """
    if not uses_deletion_shortcut(model, params, instances):
        steps = loo_variants_per_step(*instances["token_ids"].shape)
        return leave_one_out_of_batch(model, params, instances, steps)
    return jax.vmap(lambda instance: leave_one_out(model, params, instance, positions_per_chunk))(
        instances
    )


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


class BatchAuditor:
    """Runs the chosen audits on batches, sharded over the local devices.

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
        self.program_cache = program_cache
        self._executables = {}
        self.mesh = data_mesh()
        self._rows = NamedSharding(self.mesh, PartitionSpec("data"))
        self.params = jax.device_put(params, NamedSharding(self.mesh, PartitionSpec()))
        key = jax.random.key(0) if key is None else key
        self.permutation_key, self.adversarial_key = jax.random.split(key)
        del key  # not used anymore

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def _arguments(self, batch: dict, audits: tuple[str, ...]) -> tuple:
        rows = batch["token_ids"].shape[0]
        if rows % self.num_devices:
            raise ValueError(
                f"The batch has {rows} rows, not a multiple of the {self.num_devices} devices; "
                "use a batch size that is (the audit command rounds it up)."
            )
        instances = jax.device_put(instances_from_batch(batch), self._rows)
        index = jax.device_put(jnp.asarray(batch["index"]), self._rows)
        return (
            self.model, self.params, instances,
            instance_keys(self.permutation_key, index),
            instance_keys(self.adversarial_key, index),
            audits, loo_positions_per_chunk(*batch["token_ids"].shape),
            self.num_permutations, self.adversary,
        )  # fmt: skip

    @property
    def programs(self) -> tuple[tuple[str, ...], ...]:
        """The audits of each compiled program (``PROGRAMS`` restricted to the chosen audits)."""
        chosen = (tuple(a for a in group if a in self.audits) for group in PROGRAMS)
        return tuple(group for group in chosen if group) or ((),)

    def compile(self, batch: dict, program: tuple[str, ...] | None = None) -> None:
        """Compiles (or loads) ``program`` (one of ``programs``; all when None) for ``batch``'s
        shape without running it; the auditor keeps the executable for later batches."""
        arguments = self._arguments(batch, ())
        for audits in self.programs if program is None else (program,):
            self._executable(batch, arguments, audits)

    def _executable(self, batch: dict, arguments: tuple, audits: tuple[str, ...]):
        """The compiled ``audit_batch`` of ``audits`` at ``batch``'s shape, called with the
        dynamic ``arguments``; compiled on first use (ahead of time, ``COMPILER_OPTIONS``)."""
        shapes = tuple((name, np.shape(value)) for name, value in sorted(batch.items()))
        key = (audits, shapes)
        if key not in self._executables:
            arguments = arguments[:_AUDITS_ARGUMENT] + (audits,) + arguments[_AUDITS_ARGUMENT + 1 :]
            if self.program_cache is None:
                lowered = audit_batch.lower(*arguments)
            else:
                lowered = self.program_cache.lower("audit_batch", audit_batch, arguments, _STATIC)
            options = COMPILER_OPTIONS.get(jax.default_backend())
            self._executables.setdefault(key, lowered.compile(options))
        return self._executables[key]

    def __call__(self, batch: dict) -> dict[str, np.ndarray]:
        """Audits one batch; returns host arrays with a leading batch axis.

        Keys: ``attention [B, T]``, ``probabilities [B, C]`` and, per audit run,
        ``gradient [B, T]``, ``loo [B, T]``, ``permutation_median_tvd [B]``,
        ``adversarial_*`` (see ``adversarial_search``).
        """
        arguments = self._arguments(batch, ())  # the programs differ in static arguments only
        dynamic = tuple(a for i, a in enumerate(arguments) if i not in _STATIC)
        executables = [self._executable(batch, arguments, audits) for audits in self.programs]

        def run(executable):
            return jax.device_get(executable(*dynamic))

        # The programs are independent: run side by side, one thread each (XLA:CPU runs two
        # programs dispatched from one thread one after the other). SST's 55 test batches on
        # 2 cores: 8.1 s one after the other, 6.8 s side by side.
        found = list(_PROGRAM_THREADS.map(run, executables))
        results = {}
        for one in found:
            results = {**one, **results}  # attention and probabilities: the first program's
        return jax.tree.map(np.asarray, results)


# Threads that run one batch's programs side by side (``BatchAuditor.__call__``).
_PROGRAM_THREADS = concurrent.futures.ThreadPoolExecutor(len(PROGRAMS), "audit-program")


# audit_batch's static arguments: model, audits, positions_per_chunk, num_permutations, settings.
_STATIC = (0, 5, 6, 7, 8)
_AUDITS_ARGUMENT = 5
