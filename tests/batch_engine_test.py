"""attn_audit.batch_engine: a toy job on the engine (static arguments by name, one executable
per program, static arguments and shape, the row check, parameters swapped per call,
per-instance keys), chunked_vmap against a plain vmap, and the batch-size round-up."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import batch_engine
from tests._fixtures import padded_batch


@functools.partial(jax.jit, static_argnames=("scale", "offset"))
def scaled_sums(params, instances, keys, scale, offset=0.0):
    """Per row: ``scale · w · Σ token_ids + offset`` and a uniform draw from the row's key."""
    total = jnp.sum(instances["token_ids"], axis=-1).astype(jnp.float32)
    draws = jax.vmap(jax.random.uniform)(keys)
    return {"sum": scale * params["w"] * total + offset, "draw": draws}


class ToyJob(batch_engine.BatchEngine):
    """Two programs of the same function, told apart by a static argument."""

    def __init__(self, params, key):
        super().__init__(params, ("single", ("double", "shifted")))
        self.key = key

    def program_call(self, batch, program, params):
        static = {"scale": 1.0} if program == "single" else {"scale": 2.0, "offset": 0.5}
        dynamic = {"params": params, "instances": self.instances(batch),
                   "keys": self.keys(self.key, batch)}  # fmt: skip
        return batch_engine.ProgramCall(scaled_sums, static, dynamic)

    def __call__(self, batch):
        return {batch_engine.program_name(p): self.run(batch, p) for p in self.programs}


def plain_sums(batch, scale, offset=0.0, w=3.0):
    return scale * w * batch["token_ids"].sum(axis=-1) + offset


def test_each_program_runs_with_its_static_arguments_and_is_timed(key):
    job = ToyJob({"w": jnp.float32(3.0)}, key)
    batch = padded_batch((5, 7, 4, 6), 12)
    results = job(batch)
    np.testing.assert_allclose(results["single"]["sum"], plain_sums(batch, 1.0), rtol=1e-6)
    np.testing.assert_allclose(results["double+shifted"]["sum"], plain_sums(batch, 2.0, 0.5),
                               rtol=1e-6)  # fmt: skip
    assert set(job.seconds) == {"single", "double+shifted"} and min(job.seconds.values()) > 0
    # Instance i's key is fold_in(role key, i): the same draw in any batch and any program.
    expected = [jax.random.uniform(jax.random.fold_in(key, i)) for i in batch["index"]]
    np.testing.assert_allclose(results["single"]["draw"], expected, rtol=1e-6)
    np.testing.assert_array_equal(results["single"]["draw"], results["double+shifted"]["draw"])


def test_one_executable_per_program_and_shape(key):
    job = ToyJob({"w": jnp.float32(3.0)}, key)
    job.compile(padded_batch((5, 7, 4, 6), 12))
    assert len(job._executables) == 2
    job(padded_batch((9, 3, 8, 10), 12, first_index=4))  # same shape: nothing compiled
    assert len(job._executables) == 2
    job(padded_batch((9, 3, 8, 10), 16))  # a wider bucket: one more per program
    assert len(job._executables) == 4


def test_parameters_swapped_for_one_call_use_the_same_executable(key):
    job = ToyJob({"w": jnp.float32(3.0)}, key)
    batch = padded_batch((5, 7, 4, 6), 12)
    job.run(batch, "single")
    other = job.replicated({"w": jnp.float32(-1.0)})
    found = job.run(batch, "single", other)
    np.testing.assert_allclose(found["sum"], plain_sums(batch, 1.0, w=-1.0), rtol=1e-6)
    assert len(job._executables) == 1
    np.testing.assert_allclose(job.run(batch, "single")["sum"], plain_sums(batch, 1.0), rtol=1e-6)


def test_rows_that_do_not_split_over_the_devices_are_refused(key, monkeypatch):
    job = ToyJob({"w": jnp.float32(3.0)}, key)
    monkeypatch.setattr(batch_engine.BatchEngine, "num_devices", property(lambda self: 3))
    with pytest.raises(ValueError, match="4 rows, not a multiple of the 3 devices"):
        job(padded_batch((5, 7, 4, 6), 12))


@pytest.mark.parametrize("chunk", [None, 1, 3, 7, 10, 50])
def test_chunked_vmap_equals_vmap(chunk):
    rows = {"x": jnp.arange(10.0), "y": jnp.arange(20.0).reshape(10, 2)}

    def function(row):
        return {"s": row["x"] + row["y"].sum(), "p": row["y"] * row["x"]}

    expected = jax.vmap(function)(rows)
    found = batch_engine.chunked_vmap(function, rows, chunk)
    for name in expected:
        np.testing.assert_array_equal(found[name], expected[name])


def test_rounded_batch_size_and_program_name():
    assert [batch_engine.rounded_batch_size(n, 4) for n in (1, 4, 5, 32)] == [4, 4, 8, 32]
    assert batch_engine.rounded_batch_size(7, 1) == 7
    assert batch_engine.program_name("lime") == "lime"
    assert batch_engine.program_name(("gradient", "loo")) == "gradient+loo"


@pytest.mark.parametrize("per_step", [1, 3, 4, 64])
def test_ragged_map_runs_each_needed_pair_like_a_plain_loop(per_step):
    rng = np.random.default_rng(0)
    needed = rng.random((5, 7)) < 0.4
    needed[2] = False  # a row with nothing to run
    table = jnp.asarray(rng.normal(size=(5, 7)), jnp.float32)

    def function(row, item):
        return {"value": table[row, item] * 2.0 + row, "pair": jnp.stack([row, item])}

    found = jax.jit(batch_engine.ragged_map, static_argnums=(0, 2))(
        function, jnp.asarray(needed), per_step
    )
    for row in range(5):
        for item in range(7):
            if needed[row, item]:
                assert found["value"][row, item] == pytest.approx(table[row, item] * 2.0 + row)
                assert found["pair"][row, item].tolist() == [row, item]
            else:
                assert found["value"][row, item] == 0 and found["pair"][row, item].tolist() == [
                    0,
                    0,
                ]


@pytest.mark.parametrize(("num_needed", "per_step", "runs"), [(0, 2, 0), (5, 2, 6), (5, 8, 8)])
def test_ragged_map_runs_only_the_steps_the_needed_pairs_fill(num_needed, per_step, runs):
    calls = []

    def function(row, item):
        jax.debug.callback(lambda r: calls.append(int(r)), row)
        return row * 0.0

    needed = np.zeros(12, bool)
    needed[np.random.default_rng(1).permutation(12)[:num_needed]] = True
    ragged = jax.jit(batch_engine.ragged_map, static_argnums=(0, 2))
    jax.block_until_ready(ragged(function, jnp.asarray(needed.reshape(3, 4)), per_step))
    jax.effects_barrier()
    assert len(calls) == runs  # whole steps: the last one's empty slots run too


def test_a_batchs_inputs_are_placed_once_for_all_its_programs(key, monkeypatch):
    job = ToyJob({"w": jnp.float32(3.0)}, key)
    placed = []
    original = batch_engine.instances_from_batch
    monkeypatch.setattr(batch_engine, "instances_from_batch",
                        lambda batch: placed.append(1) or original(batch))  # fmt: skip
    first, second = padded_batch((5, 7, 4, 6), 12), padded_batch((9, 3, 8, 10), 12, first_index=4)
    results = job(first)  # two programs, one placement
    assert len(placed) == 1
    again = job(second)
    assert len(placed) == 2
    np.testing.assert_allclose(again["single"]["sum"], plain_sums(second, 1.0), rtol=1e-6)
    expected = [jax.random.uniform(jax.random.fold_in(key, i)) for i in second["index"]]
    np.testing.assert_allclose(again["single"]["draw"], expected, rtol=1e-6)
    assert not np.array_equal(results["single"]["draw"], again["single"]["draw"])
