"""Abnar & Zuidema's evaluation over a whole split: jitted sweeps, batches and per-instance ρ.

``attn_audit.evaluations.az`` scores ONE instance; here those functions are vmapped over a
batch and jitted once per bucket width (``scores_batch``, ``correlations_batch``), the exact
attention flow runs in numpy/scipy between the two (``flow.attention_flow_batch``), and
``evaluate`` walks the split in bucketed batches and returns every instance's ρ in data
order (AZ §2, Tables 1–2; SPEC §5). ``experiments/az_eval.py`` is the command.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from attn_audit import data
from attn_audit.audits import flow as flow_lib
from attn_audit.evaluations import az
from attn_audit.models import is_real_token

# ---------------------------------------------------------------- the jitted sweeps


@functools.partial(jax.jit, static_argnames=("config", "blank_id"))
def scores_batch(params, config, token_ids, lengths, labels, blank_id):
    """``az.instance_scores`` vmapped over a batch: maps, relevance and importance.

    One compiled program per bucket width (and per model and blank).

    Args:
      params, config: a transformer classifier.
      token_ids: int ``[B, T]``.
      lengths: int ``[B]``.
      labels: int ``[B]``, the class y of each instance (AZ: the correct class).
      blank_id: the blank of the blank-out importance (UNK, or ``[MASK]`` for MiniLM).

    Returns:
      ``{"attention_maps": [B, L, H, T, T], "raw": [B, L, T], "rollout": [B, L, T],
      "blank_out": [B, T], "gradient": [B, T], "probabilities": [B, C]}``.
    """

    def one(token_ids, length, label):
        return az.instance_scores(params, config, token_ids, length, label, blank_id)

    return jax.vmap(one)(token_ids, lengths, labels)


@jax.jit
def correlations_batch(relevances, importances, mask, word_index):
    """``az.correlations`` per word, vmapped over instances (word-piece models).

    Args:
      relevances: name → ``[B, L, T]``.
      importances: name → ``[B, T]``.
      mask: bool ``[B, T]``, the real tokens.
      word_index: int ``[B, T]``, the word of each piece, −1 for none.

    Returns:
      ``{relevance: {importance: ρ [B, L]}}``.
    """
    return jax.vmap(az.correlations)(relevances, importances, mask, word_index)


@jax.jit
def token_correlations_batch(relevances, importances, mask):
    """``az.correlations`` per token, vmapped over instances.

    Args:
      relevances: name → ``[B, L, T]``.
      importances: name → ``[B, T]``.
      mask: bool ``[B, T]``, the real tokens.

    Returns:
      ``{relevance: {importance: ρ [B, L]}}``.
    """
    return jax.vmap(az.correlations)(relevances, importances, mask)


# ---------------------------------------------------------------- inputs


def encode(run, dataset, split_name: str):
    """A split encoded for the run's model, the blank id, and word indices for word pieces.

    Args:
      run: a loaded run folder (``training.run_folder.load_run``); without a vocabulary it
        is a word-piece (MiniLM) run.
      dataset: the run's dataset (``data.load_dataset``).
      split_name: ``"train"``, ``"dev"`` or ``"test"``.

    Returns:
      ``(split, blank_id, word_indices)``: ``blank_id`` is UNK, or ``[MASK]`` for word
      pieces; ``word_indices`` is None, or for word pieces one int ``[T_n]`` per instance,
      the word of each piece (−1 on [CLS] and [SEP]).
    """
    if run.vocab is not None:
        return data.encode_split(dataset, split_name, run.vocab), az.UNK_ID, None
    from attn_audit.data import wordpiece

    tokenizer = wordpiece.load_tokenizer()
    split = wordpiece.encode_pieces_split(dataset, split_name, tokenizer)
    word_indices = []
    for example, ids in zip(split.examples, split.token_ids, strict=True):
        pieces = wordpiece.encode_text(tokenizer, wordpiece.example_text(example))
        if not np.array_equal(pieces.ids, ids):
            raise ValueError(f"{example.id}: word pieces differ from the encoded split's.")
        word_indices.append(pieces.word_index)
    return split, tokenizer.token_to_id("[MASK]"), word_indices


def padded_word_index(word_indices, rows: np.ndarray, num_positions: int) -> np.ndarray:
    """The word of each piece of a batch, padded to the bucket.

    Args:
      word_indices: one int ``[T_n]`` per instance of the split (``encode``).
      rows: int ``[B]``, the batch's instance indices, −1 on padding rows.
      num_positions: ``T``, the bucket width.

    Returns:
      int ``[B, T]``, −1 off the words and on padding rows.
    """
    padded = np.full((len(rows), num_positions), -1, np.int32)
    for b, index in enumerate(rows):
        if index >= 0:
            padded[b, : len(word_indices[index])] = word_indices[index]
    return padded


# ---------------------------------------------------------------- AZ's evaluation


def evaluate(run, split, boundaries, blank_id, word_indices, batch_size, executor=None):
    """Per-instance ρ of every layer's CLS relevance with every importance, and timings.

    Args:
      run: a loaded run folder of a transformer (``params``, ``model_config``).
      split: the encoded split (``encode``), N instances.
      boundaries: the bucket boundaries of ``data.batches``.
      blank_id: the blank of the blank-out importance.
      word_indices: None, or per instance the word of each piece (``encode``).
      batch_size: instances per batch.
      executor: where the attention flow runs (``flow.attention_flow_batch``); None: here.

    Returns:
      ``(rho, timings)``: ``rho`` is ``{relevance: {importance: [N, L]}}`` in data order,
      ``timings`` the seconds spent in scores, flow and correlations.
    """
    config = run.model_config
    num_layers = config.num_layers
    rho = {r: {i: np.zeros((len(split.labels), num_layers)) for i in az.IMPORTANCES}
           for r in az.RELEVANCES}  # fmt: skip
    timings = {"scores_seconds": 0.0, "flow_seconds": 0.0, "correlation_seconds": 0.0}
    for batch in data.batches(split, batch_size, boundaries):
        start = time.perf_counter()
        scores = scores_batch(
            run.params, config, jnp.asarray(batch["token_ids"]), jnp.asarray(batch["lengths"]),
            jnp.asarray(batch["labels"]), blank_id,
        )  # fmt: skip
        scores = jax.device_get(scores)
        timings["scores_seconds"] += time.perf_counter() - start

        start = time.perf_counter()
        rows = np.flatnonzero(batch["index"] >= 0)
        lengths = batch["lengths"]
        flow = np.zeros(scores["raw"].shape)
        flow[rows] = flow_lib.attention_flow_batch(
            scores["attention_maps"][rows], lengths[rows], row=0, executor=executor
        )
        real = is_real_token(np.arange(flow.shape[-1]), lengths[:, None])  # [B, T], numpy
        flow = np.where(real[:, None, :], flow, 0.0)
        timings["flow_seconds"] += time.perf_counter() - start

        start = time.perf_counter()
        relevances = {"raw": scores["raw"], "rollout": scores["rollout"],
                      "flow": flow.astype(np.float32)}  # fmt: skip
        importances = {name: scores[name] for name in az.IMPORTANCES}
        mask = real
        if word_indices is None:
            batch_rho = token_correlations_batch(relevances, importances, mask)
        else:
            word_index = padded_word_index(word_indices, batch["index"], flow.shape[-1])
            batch_rho = correlations_batch(relevances, importances, mask, word_index)
        batch_rho = jax.device_get(batch_rho)
        for r in az.RELEVANCES:
            for i in az.IMPORTANCES:
                rho[r][i][batch["index"][rows]] = batch_rho[r][i][rows]
        timings["correlation_seconds"] += time.perf_counter() - start
        logging.info("AZ: batch of length %d done", batch["token_ids"].shape[1])
    return rho, timings
