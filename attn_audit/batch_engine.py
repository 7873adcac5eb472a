"""The one batch engine: every job's compiled programs, run on sharded batches.

A job (the audits, the attention views, the explainers, the faithfulness metrics, any
later one) subclasses ``BatchEngine`` and says, for each of its named ``programs``, which
jitted function runs it on a batch and with which arguments (``program_call``): static
ones by name (the model, settings, chunk sizes) and dynamic ones (parameters, instances,
keys). The engine does the rest, once for every job:

- a 1-D ``data`` mesh over the local devices; the batch's rows are sharded along it (their
  number checked against the devices), the parameters replicated, so the same code runs on
  one CPU, several host devices, GPUs or TPUs;
- per-instance keys ``fold_in(role_key, index)``: results do not depend on batching or
  sharding;
- one compiled executable per (program, static arguments, batch shape), compiled ahead of
  time with ``compiler_options()`` (through an ``exported.ProgramCache`` when given, so a
  later process skips tracing, and the processes other than process 0 of a job, which JAX's
  cache does not serve, compiling), and each program's run seconds.

``attn_audit.batch_runner`` runs an engine over a split (its ``programs``, ``compile`` and
``__call__``). Inside a program, ``chunked_vmap`` bounds the memory of many variants.
"""

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

# XLA options of every engine program, per platform. On CPU, LLVM's optimisation level 1 instead
# of the default: measured on SST's audit (benchmarks/RESULTS.md), the programs compile in
# about a quarter less time, the fixed-state audits run 1.4-2x faster (the default's loop
# optimisations do not pay on their small [B, K, T] arrays) and the others as fast.
COMPILER_OPTIONS = {"cpu": {"xla_backend_optimization_level": 1}}


def compiler_options() -> dict | None:
    """``COMPILER_OPTIONS`` of this backend, unless ``$XLA_FLAGS`` sets the optimisation level
    itself (then XLA's flags decide: the test suite's cheaper settings, a user's own)."""
    if "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""):
        return None
    return COMPILER_OPTIONS.get(jax.default_backend())


def data_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh over every local device (this process's), axis ``data``.

    Auto axis type: XLA propagates the batch sharding through the vmapped programs
    (gathers from the replicated embedding included) without annotations. In a job of
    several processes (``attn_audit.distributed``) each process runs its own share of the
    split on its own mesh: the programs need nothing from another host.
    """
    return jax.make_mesh(
        (jax.local_device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
        devices=jax.local_devices(),
    )  # fmt: skip


def rounded_batch_size(batch_size: int, num_devices: int) -> int:
    """``batch_size`` rounded up to a multiple of ``num_devices`` (every device gets rows)."""
    return -(-batch_size // num_devices) * num_devices


def instances_from_batch(batch: dict) -> dict:
    """Per-instance inputs of the programs, each with a leading batch axis: ``token_ids``,
    ``length`` and, for QA/NLI, ``question_ids`` and ``question_length``."""
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


def chunked_vmap(function, inputs, chunk: int | None):
    """``vmap(function)(inputs)``, or at most ``chunk`` rows at a time to bound memory.

    ``inputs`` is an array or pytree with a leading axis of R rows; ``chunk`` None (or at
    least R) vmaps all rows at once. Otherwise the rows go in ``⌈R / chunk⌉`` equal steps
    (``lax.map`` over a vmapped body; the last row repeated to fill the last step, its
    results dropped): one body to compile, where ``lax.map(batch_size=...)`` compiles a
    second one for the remainder.
    """
    rows = jax.tree.leaves(inputs)[0].shape[0]
    if chunk is None or chunk >= rows:
        return jax.vmap(function)(inputs)
    steps = -(-rows // chunk)
    size = -(-rows // steps)

    def to_steps(x):
        filled = jnp.concatenate([x, jnp.repeat(x[-1:], steps * size - rows, axis=0)])
        return filled.reshape(steps, size, *x.shape[1:])

    outputs = jax.lax.map(jax.vmap(function), jax.tree.map(to_steps, inputs))
    return jax.tree.map(lambda y: y.reshape(steps * size, *y.shape[2:])[:rows], outputs)


def ragged_map(function, needed: jax.Array, per_step: int | None, of_step=None):
    """``function(row, item)`` for every needed (row, item) pair of a batch, and only those.

    ``vmap`` over rows and items runs every pair, padding included; here the needed pairs
    are gathered first (row-major order) and run ``per_step`` at a time, for
    ``⌈Σ needed / per_step⌉`` steps: a loop whose trip count is data, so one compiled
    program serves any mix of lengths. Call it inside ``jit``.

    Args:
      function: ``(row, item) -> array or pytree`` (int scalars in), vmappable; with
        ``of_step``, ``(row, item, shared)``.
      needed: bool ``[B, K]``.
      per_step: pairs run together (one vmapped step); None: all ``B · K`` at once.
      of_step: optional ``rows [per_step] -> shared``, what a step's pairs share (e.g. their
        rows' longest length), passed to each of them unbatched. The last step's ``rows``
        may include rows of pairs that are not needed.

    Returns:
      ``function``'s outputs with leading axes ``[B, K]``, zero where not needed.
    """
    num_rows, width = needed.shape
    flat = needed.reshape(-1)
    order = jnp.argsort(~flat, stable=True)  # the needed pairs first, in row-major order
    count = jnp.sum(flat)
    capacity = flat.shape[0]
    per_step = capacity if per_step is None else min(per_step, capacity)
    slots = -(-capacity // per_step) * per_step
    order = jnp.concatenate([order, jnp.zeros(slots - capacity, order.dtype)])
    rows, items = order // width, order % width
    probe = function if of_step is None else (lambda r, i: function(r, i, of_step(rows[:1])))
    shapes = jax.eval_shape(probe, rows[0], items[0])
    outputs = jax.tree.map(lambda shape: jnp.zeros((slots, *shape.shape), shape.dtype), shapes)

    def step(index, outputs):
        start = index * per_step
        step_rows = jax.lax.dynamic_slice_in_dim(rows, start, per_step)
        step_items = jax.lax.dynamic_slice_in_dim(items, start, per_step)
        if of_step is None:
            found = jax.vmap(function)(step_rows, step_items)
        else:
            shared = of_step(step_rows)
            found = jax.vmap(lambda row, item: function(row, item, shared))(step_rows, step_items)
        return jax.tree.map(
            lambda out, new: jax.lax.dynamic_update_slice_in_dim(out, new, start, axis=0),
            outputs, found,
        )  # fmt: skip

    outputs = jax.lax.fori_loop(0, (count + per_step - 1) // per_step, step, outputs)
    # Slots past the needed pairs (never run) are dropped: sent past the end.
    target = jnp.where(jnp.arange(slots) < count, order, capacity)

    def scatter(values):
        placed = jnp.zeros((capacity, *values.shape[1:]), values.dtype)
        placed = placed.at[target].set(values, mode="drop")
        return placed.reshape(num_rows, width, *values.shape[1:])

    return jax.tree.map(scatter, outputs)


def program_name(program) -> str:
    """A program's name in timings: its own, or its parts joined by ``+`` (the audits')."""
    return program if isinstance(program, str) else "+".join(program)


@dataclasses.dataclass(frozen=True)
class ProgramCall:
    """How one program runs on one batch.

    Attributes:
      function: a jitted function whose static arguments are exactly the keys of ``static``.
      static: static arguments by name (hashable: they key the compiled executable).
      dynamic: the other arguments by name (arrays or pytrees of them, placed on the mesh).
    """

    function: Callable
    static: Mapping[str, Any]
    dynamic: Mapping[str, Any]


def _batch_shapes(batch: dict) -> tuple:
    return tuple((name, np.shape(value)) for name, value in sorted(batch.items()))


class BatchEngine:
    """What every batch job shares; a job subclasses it and defines ``program_call``.

    Args:
      params: the model's parameters (replicated on every device once, here).
      programs: the job's programs (names, or tuples of names), in the order they run.
      program_cache: optional ``exported.ProgramCache``: programs traced once, kept on disk.

    ``seconds`` accumulates each program's run time over the batches (``program_name``).
    """

    def __init__(self, params, programs, program_cache=None):
        self.mesh = data_mesh()
        self._row_sharding = NamedSharding(self.mesh, PartitionSpec("data"))
        self.params = self.replicated(params)
        self.programs = tuple(programs)
        self.program_cache = program_cache
        self.seconds = dict.fromkeys(map(program_name, self.programs), 0.0)
        self._executables = {}
        self._last_batch = (None, {})

    def per_batch(self, batch: dict, name: str, make: Callable[[], Any]):
        """``make()``, computed once per batch and shared by all its programs (the placed
        instances, the keys, a job's own inputs); kept for the latest batch only. Safe from
        the compiling threads: each compares the batch it holds before reusing a value."""
        latest = self._last_batch
        if latest[0] is not batch:
            latest = (batch, {})
            self._last_batch = latest
        if name not in latest[1]:
            latest[1][name] = make()
        return latest[1][name]

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def replicated(self, tree):
        """``tree`` placed like the model's parameters (a copy on every device)."""
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

    def sharded(self, tree):
        """``tree``'s leading (row) axis split over the devices."""
        return jax.device_put(tree, self._row_sharding)

    def instances(self, batch: dict) -> dict:
        """The batch's per-instance inputs (``instances_from_batch``), sharded by rows; a
        ValueError if the rows do not split evenly over the devices."""
        rows = batch["token_ids"].shape[0]
        if rows % self.num_devices:
            raise ValueError(
                f"The batch has {rows} rows, not a multiple of the {self.num_devices} devices; "
                "use a batch size that is (rounded_batch_size; the commands round it up)."
            )
        return self.per_batch(batch, "instances",
                              lambda: self.sharded(instances_from_batch(batch)))  # fmt: skip

    def keys(self, role_key: jax.Array, batch: dict) -> jax.Array:
        """``[B]`` keys of the batch's instances for one random role (``instance_keys``)."""
        index = self.per_batch(batch, "index", lambda: self.sharded(jnp.asarray(batch["index"])))
        return self.per_batch(batch, f"keys {id(role_key)}",
                              lambda: instance_keys(role_key, index))  # fmt: skip

    def program_call(self, batch: dict, program, params) -> ProgramCall:
        """The job's: how ``program`` runs on ``batch`` with (replicated) ``params``."""
        raise NotImplementedError

    def executable(self, batch: dict, program, params=None):
        """``(compiled program, its dynamic arguments)`` for ``batch``; compiled on first use
        of its (program, static arguments, batch shape)."""
        call = self.program_call(batch, program, self.params if params is None else params)
        key = (program, tuple(sorted(call.static.items())), _batch_shapes(batch))
        if key not in self._executables:
            if self.program_cache is None:
                lowered = call.function.lower(**call.static, **call.dynamic)
                compiled = lowered.compile(compiler_options())
            else:
                compiled = self.program_cache.compiled(
                    program_name(program), call.function, call.static, call.dynamic,
                    compiler_options(),
                )  # fmt: skip
            self._executables.setdefault(key, compiled)
        return self._executables[key], call.dynamic

    def compile(self, batch: dict, program=None) -> None:
        """Compiles (or loads) ``program`` (all when None) at ``batch``'s shape without
        running it; the engine keeps the executable for later batches."""
        for name in self.programs if program is None else (program,):
            self.executable(batch, name)

    def run(self, batch: dict, program, params=None) -> dict:
        """Runs ``program`` on ``batch``: its outputs as host numpy arrays (run time counted
        in ``seconds``). ``params`` (from ``replicated``) replaces the model's parameters
        for this call, with the same compiled program."""
        start = time.perf_counter()
        executable, dynamic = self.executable(batch, program, params)
        found = jax.tree.map(np.asarray, jax.device_get(executable(**dynamic)))
        self.seconds[program_name(program)] += time.perf_counter() - start
        return found

    def __call__(self, batch: dict) -> dict[str, np.ndarray]:
        """Every program on ``batch``, their outputs merged (a job may say more)."""
        results = {}
        for program in self.programs:
            results.update(self.run(batch, program))
        return results
