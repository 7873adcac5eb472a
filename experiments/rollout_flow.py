r"""Raw attention, rollout and exact attention flow of attention maps from any framework (AZ §3).

  python -m experiments.rollout_flow --attention=A.npy --out=OUT.npz \
      [--lengths=L.npy --workers=2]

``A.npy`` holds float attention weights (after the softmax, rows queries) of one instance,
``[layers, heads, n, n]``, or of a batch, ``[batch, layers, heads, n, n]``; save them with
``numpy.save`` (from PyTorch: ``np.save("A.npy", torch.stack(outputs.attentions, 1).numpy())``
for a Hugging Face model's ``output_attentions=True``). ``L.npy`` holds the numbers of real
positions (``[batch]`` ints, or one int for one instance); padded positions are cut off and
are 0 in every output.

Writes ``OUT.npz`` with ``raw`` (head average), ``rollout`` and ``flow``, each
``[..., layers, n, n]`` with the input's leading shape (SPEC §5; ``attn_audit/audits/flow.py``).
Expected on a 2-core CPU: about 0.3 s per instance of 6 layers and 32 tokens for the flow
(benchmarks/FLOW_RESULTS.md), plus a few seconds of start-up; raw and rollout take
milliseconds.
"""

import concurrent.futures
import multiprocessing
import pathlib
import sys
import time

import jax
import numpy as np
from absl import app, flags

from attn_audit.audits import flow as flow_lib
from attn_audit.audits import rollout
from experiments._setup import setup

_ATTENTION = flags.DEFINE_string(
    "attention", None, "A .npy file of [layers, heads, n, n] or [batch, ...] maps (required)."
)
_OUT = flags.DEFINE_string("out", None, "The .npz file to write (required).")
_LENGTHS = flags.DEFINE_string("lengths", None, "A .npy file of real lengths ([batch] ints).")
_WORKERS = flags.DEFINE_integer("workers", 1, "Processes for the flow (1: this process only).")


def load_array(path: str, flag: str) -> np.ndarray:
    """The array in a .npy file, or ValueError naming the flag, the problem and the fix."""
    file = pathlib.Path(path)
    if not file.is_file():
        raise ValueError(f"--{flag}={path} does not exist; write the array with numpy.save first.")
    try:
        return np.load(file, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(
            f"--{flag}={path} is not a .npy array ({error}); write it with numpy.save(path, array)."
        ) from error


def checked_lengths(lengths: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``[batch]`` int lengths for maps of ``shape`` ``[batch, layers, heads, n, n]``."""
    batch, n = shape[0], shape[-1]
    if lengths is None:
        return np.full(batch, n)
    lengths = np.asarray(lengths).reshape(-1) if np.ndim(lengths) == 0 else np.asarray(lengths)
    if lengths.shape != (batch,) or lengths.dtype.kind not in "iu":
        raise ValueError(
            f"--lengths must hold {batch} integers, one per instance of the attention file; got "
            f"shape {lengths.shape} of {lengths.dtype}. Save them with numpy.save(path, "
            "np.asarray(lengths, np.int32))."
        )
    if lengths.min() < 1 or lengths.max() > n:
        raise ValueError(
            f"--lengths must lie in [1, {n}] (maps have {n} positions); got {lengths}."
        )
    return lengths


def relevance_maps(attention: np.ndarray, lengths: np.ndarray | None, workers: int = 1):
    """``{"raw", "rollout", "flow"}`` of ``[layers, heads, n, n]`` or ``[batch, ...]`` maps."""
    single = np.ndim(attention) == 4
    batch = attention[None] if single else attention
    if np.ndim(batch) != 5:
        raise ValueError(
            f"--attention must hold [layers, heads, n, n] or [batch, layers, heads, n, n] maps; "
            f"got shape {np.shape(attention)}. Add a heads axis (attention[:, None]) for "
            "single-head maps."
        )
    lengths = checked_lengths(lengths, batch.shape)
    if workers > 1:
        context = multiprocessing.get_context("spawn")  # forking a JAX process can deadlock
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as executor:
            flow = flow_lib.attention_flow_batch(batch, lengths, executor=executor)
    else:
        flow = flow_lib.attention_flow_batch(batch, lengths)  # validates the values too
    raw = jax.jit(jax.vmap(rollout.raw_attention))(batch, lengths)
    rolled = jax.jit(jax.vmap(rollout.rollout))(batch, lengths)
    maps = {"raw": np.asarray(raw), "rollout": np.asarray(rolled), "flow": flow}
    return {name: values[0] for name, values in maps.items()} if single else maps


def main(argv):
    del argv
    setup()
    start = time.perf_counter()
    try:
        for flag, value in (("attention", _ATTENTION.value), ("out", _OUT.value)):
            if not value:
                raise ValueError(f"--{flag} is required (see --help).")
        attention = load_array(_ATTENTION.value, "attention")
        lengths = None if _LENGTHS.value is None else load_array(_LENGTHS.value, "lengths")
        maps = relevance_maps(attention, lengths, _WORKERS.value)
    except ValueError as error:
        sys.exit(f"error: {error}")
    out = pathlib.Path(_OUT.value)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as file:  # np.savez would add .npz to any other name
        np.savez(file, **maps)
    print(
        f"Wrote {out}: raw, rollout, flow of shape {maps['flow'].shape} "
        f"in {time.perf_counter() - start:.1f} s."
    )


if __name__ == "__main__":
    app.run(main)
