r"""attn_audit's batched JAX explainers against Captum on the default SST model: agreement, speed.

  python -m benchmarks.explain_vs_captum [--workdir=runs/sst_lstm_tanh --limit=N
                                          --captum_limit=200 --torch_threads=1]

Every explainer explains ``f(x) = p(ŷ | x)``, ŷ predicted on the full input, with UNK as the
mask token (SPEC §7). Captum runs on the PyTorch twin (``tests/reference/torch_model.py``)
loaded with the run's weights; its perturbation methods see only the real tokens (positions
1 … n), a forward function puts SOS and EOS around them, so Captum never spends a forward
pass on SOS, EOS or padding.

1. Agreement first: on the first ``--agreement_instances`` instances of the first batch,
   Captum's ``LayerIntegratedGradients`` on the embedding layer (mask-token baseline, the
   same points and rule), ``LayerGradientXActivation`` (grad × input) and
   ``FeatureAblation`` (occlusion with UNK) against ours; Captum batched against Captum one
   instance at a time. Asserted: gradients to 1e-4 of the instance's largest score,
   occlusion to 1e-5.
2. Speed per explainer on the whole test set (or its first ``--limit`` instances), in the
   explain command's batches (``--batch_size`` rows, balanced, its four widths fitted to
   the split): ours = ahead-of-time compilation, timed apart, then the steady seconds per
   instance. Captum costs up to seconds an instance, so it is timed on ``--captum_limit``
   instances stratified by length (as issue 34 allows), one instance at a time with its
   defaults (``internal_batch_size``, ``perturbations_per_eval``), and batched as far as
   Captum allows (the sample sorted by length, ``--batch_size`` a call); per-instance
   times are compared.
3. The whole ``experiments.explain`` process over the same instances, with every default
   explainer, a fresh copy of the run folder and an empty JAX cache, against Captum's
   per-instance times summed over the six explainers × the instances
   (``--noexplain_process`` skips it).
4. Writes ``benchmarks/EXPLAIN_RESULTS.md`` (hand-written remarks below its marker line
   are kept) and prints it.

Expected run time with the defaults on a 2-core machine: 19-37 minutes (2026-12-07, two
AMD EPYC VMs).
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import captum
import jax
import numpy as np
import torch
from absl import app, flags
from captum.attr import (
    FeatureAblation,
    KernelShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    Lime,
    ShapleyValueSampling,
)

from attn_audit import data, explainers
from attn_audit.audits import auditable_model
from attn_audit.batch_runner import first_instances, split_boundaries
from attn_audit.data.vocab import EOS, PAD, SOS, UNK
from attn_audit.explainers.occlusion import PAIR_VARIANTS_PER_BUDGETED_VARIANT
from attn_audit.interop import to_torch_state_dict
from attn_audit.training.run_folder import load_run
from benchmarks import _machine
from benchmarks._results import REMARKS_MARKER, command_line, write_results  # noqa: F401
from tests.reference.torch_model import load_torch_model

_WORKDIR = flags.DEFINE_string("workdir", "runs/sst_lstm_tanh", "A trained run (make train).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data folder (default $ATTN_AUDIT_DATA).")
_LIMIT = flags.DEFINE_integer(
    "limit", None, "Test instances for the timings (default: the whole test set)."
)
_CAPTUM_LIMIT = flags.DEFINE_integer(
    "captum_limit", 200, "Instances, stratified by length, that Captum is timed on."
)
_EXPLAIN_PROCESS = flags.DEFINE_bool(
    "explain_process", True, "Also time the whole experiments.explain process (cold cache)."
)
_AGREEMENT_INSTANCES = flags.DEFINE_integer("agreement_instances", 4, "Instances to compare.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Rows per batch, both sides.")
_PERTURBATIONS_PER_EVAL = flags.DEFINE_integer(
    "perturbations_per_eval",
    None,
    "Captum batched: perturbations per forward pass (default: tuned, CAPTUM_GRID).",
)
_IG_INTERNAL_BATCH_SIZE = flags.DEFINE_integer(
    "ig_internal_batch_size",
    None,
    "Captum batched IG: rows per pass (default: tuned, CAPTUM_GRID; 0: all at once).",
)
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 1, "ATen intra-op threads for Captum (0: PyTorch's default)."
)
_EXPLAINERS = flags.DEFINE_list("explainers", None, "Explainers to time (default all six).")
_OUT = flags.DEFINE_string("out", "benchmarks", "Where EXPLAIN_RESULTS.md goes.")

# Explainers that both sides have; the first three are deterministic.
EXPLAINERS = ("integrated_gradients", "grad_input", "occlusion", "shapley_sampling",
              "kernel_shap", "lime")  # fmt: skip
DETERMINISTIC = EXPLAINERS[:3]
# Gradients: float32 on both sides, summed in different orders (and over 50 points for IG);
# measured 1e-6 of the largest score. Occlusion evaluates the same inputs on both sides.
GRADIENT_RTOL, OCCLUSION_ATOL = 1e-4, 1e-5
# A measurement is repeated until it has taken this long (at most 5 times); the best counts.
MIN_TIMING_SECONDS = 2.0
RESULTS_FILE = "EXPLAIN_RESULTS.md"
# Captum batched's settings, tuned per explainer on the sample's middle group before timing
# (the fastest candidate wins): IG's rows per pass (None: all at once), and perturbations per
# forward pass (a group's rows × it, for the methods that batch over examples).
CAPTUM_GRID = {
    "integrated_gradients": ("ig_internal_batch_size", (50, 400, None)),
    "occlusion": ("perturbations_per_eval", (4, 16, 64)),
    "shapley_sampling": ("perturbations_per_eval", (4, 16, 64)),
    "kernel_shap": ("perturbations_per_eval", (16, 64, 256)),
    "lime": ("perturbations_per_eval", (16, 64, 256)),
}


def machine() -> str:
    return _machine.describe(
        f"jax {jax.__version__} ({jax.default_backend()})",
        f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads)",
        f"captum {captum.__version__}",
    )


def load_average() -> str:
    return "/".join(f"{load:.1f}" for load in os.getloadavg())


def best_seconds(run) -> float:
    """The fastest of ``run()``'s wall times, repeated until ``MIN_TIMING_SECONDS`` are spent."""
    times = []
    while not times or (sum(times) < MIN_TIMING_SECONDS and len(times) < 5):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


# ------------------------------------------------------------------ instances and batches


def batch_rows(batch: dict) -> list[tuple[int, np.ndarray]]:
    """``(index, token ids [length])`` of the real rows of a padded batch, SOS and EOS kept."""
    return [(int(batch["index"][row]), batch["token_ids"][row, : batch["lengths"][row]])
            for row in np.flatnonzero(batch["index"] >= 0)]  # fmt: skip


def captum_groups(batches: list[dict], count: int, batch_size: int) -> list[list[tuple]]:
    """Captum's sample, stratified by length: the rows ``(index, ids)`` of ``batches`` sorted
    by length (ties by number) and cut into groups of ``batch_size`` (the batches a PyTorch
    user who sorts the whole split by length would run: the least padding), of which
    ``⌈count / batch_size⌉`` groups at evenly spaced ranks are kept."""
    rows = sorted((row for batch in batches for row in batch_rows(batch)),
                  key=lambda row: (len(row[1]), row[0]))  # fmt: skip
    groups = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    wanted = min(-(-count // batch_size), len(groups))
    return [groups[rank] for rank in sorted(set(np.linspace(0, len(groups) - 1, wanted)
                                                .round().astype(int)))]  # fmt: skip


# ------------------------------------------------------------------ Captum on the twin


class CaptumTwin:
    """The PyTorch twin as Captum's forward functions: ``p(· | x)`` ``[B, C]``."""

    def __init__(self, twin):
        self.twin = twin
        self.embedding = twin.encoder.embedding

    def probabilities(self, token_ids, lengths):
        """Of token ids ``[B, T]`` (SOS and EOS included), as the twin takes them."""
        return self.twin(token_ids, lengths)[0]

    def probabilities_of_real_tokens(self, real_tokens, lengths):
        """Of the real tokens ``[B, N]`` (row b's first ``lengths[b] − 2`` count): SOS before,
        EOS after and PAD beyond are put back here, so Captum never perturbs them."""
        rows, width = real_tokens.shape
        positions = torch.arange(width + 2)[None, :]
        token_ids = torch.cat([torch.full((rows, 1), SOS), real_tokens,
                               torch.full((rows, 1), PAD)], dim=1)  # fmt: skip
        token_ids = torch.where(positions == lengths[:, None] - 1, EOS, token_ids)
        token_ids = torch.where(positions >= lengths[:, None], PAD, token_ids)
        return self.twin(token_ids, lengths)[0]


def padded_tensors(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[B, max length]`` (PAD after each row) and lengths ``[B]``, long."""
    lengths = [len(ids) for ids in rows]
    token_ids = torch.full((len(rows), max(lengths)), PAD, dtype=torch.long)
    for row, ids in enumerate(rows):
        token_ids[row, : len(ids)] = torch.as_tensor(ids.astype(np.int64))
    return token_ids, torch.as_tensor(lengths, dtype=torch.long)


def captum_attribute(
    explainer: str, side: CaptumTwin, rows: list[np.ndarray], settings, batched: bool,
    perturbations_per_eval: int = 64, ig_internal_batch_size: int | None = None,
) -> list[np.ndarray]:  # fmt: skip
    """Captum's scores of the real tokens, one ``[n]`` float64 array per row of ``rows``.

    ŷ is the twin's prediction on each full row (a forward pass, part of the cost).
    ``batched=False`` is Captum's documented default (one instance per ``attribute``
    call, ``internal_batch_size`` and ``perturbations_per_eval`` left alone) and expects one
    row; ``batched=True`` gives all ``rows`` to one call where Captum batches over
    examples (IG, grad × input, ``FeatureAblation``, ``ShapleyValueSampling``), with
    ``perturbations_per_eval`` perturbations a forward pass. Captum's ``KernelShap`` and
    ``Lime`` fit one model per example and loop over a batch themselves (with a warning),
    so they get one row a call either way.

    KernelSHAP: Captum's ``n_samples`` counts the full and the empty coalition, which ours
    evaluates besides its ``kernel_samples``; it is given ``kernel_samples + 2``. LIME:
    Captum's defaults (Bernoulli(½) masks, ``exp(−d²/2)`` of the cosine distance between the
    token-id vectors, ``SkLearnLasso(alpha=0.01)``), not ``lime``'s (SPEC §7, ours).
    """
    if not batched and len(rows) != 1:
        raise ValueError(f"One instance at a time, got {len(rows)}.")
    token_ids, lengths = padded_tensors(rows)
    with torch.no_grad():
        targets = side.probabilities(token_ids, lengths).argmax(dim=-1).tolist()
    common = {"target": targets, "additional_forward_args": (lengths,)}
    per_eval = {"perturbations_per_eval": perturbations_per_eval} if batched else {}
    real_tokens = token_ids[:, 1:-1]
    if explainer == "integrated_gradients":
        positions = torch.arange(token_ids.shape[1])[None, :]
        real = (positions >= 1) & (positions <= lengths[:, None] - 2)  # SOS, EOS, PAD kept
        method = LayerIntegratedGradients(side.probabilities, side.embedding)
        scores = method.attribute(
            token_ids, baselines=torch.where(real, UNK, token_ids), n_steps=settings.ig_points,
            method=settings.ig_rule, internal_batch_size=ig_internal_batch_size if batched
            else None, **common,
        ).sum(dim=-1)[:, 1:-1]  # fmt: skip
    elif explainer == "grad_input":
        method = LayerGradientXActivation(side.probabilities, side.embedding)
        scores = method.attribute(token_ids, **common).sum(dim=-1)[:, 1:-1]
    elif explainer == "occlusion":
        method = FeatureAblation(side.probabilities_of_real_tokens)
        scores = method.attribute(real_tokens, baselines=UNK, **common, **per_eval)
    elif explainer == "shapley_sampling":
        method = ShapleyValueSampling(side.probabilities_of_real_tokens)
        scores = method.attribute(real_tokens, baselines=UNK, n_samples=
                                  settings.shapley_permutations, **common, **per_eval)  # fmt: skip
    elif explainer in ("kernel_shap", "lime"):
        method = (KernelShap if explainer == "kernel_shap" else Lime)(
            side.probabilities_of_real_tokens
        )
        samples = (settings.kernel_samples + 2 if explainer == "kernel_shap"
                   else settings.lime_samples)  # fmt: skip
        parts = []
        for row in range(len(rows)):
            one = slice(row, row + 1)
            parts.append(method.attribute(
                real_tokens[one, : lengths[row] - 2], baselines=UNK, target=targets[row],
                additional_forward_args=(lengths[one],), n_samples=samples, **per_eval,
            )[0])  # fmt: skip
        return [part.detach().numpy().astype(np.float64) for part in parts]
    else:
        raise ValueError(f"Captum has no counterpart of {explainer!r} here.")
    scores = scores.detach().numpy().astype(np.float64)
    return [scores[row, : len(ids) - 2] for row, ids in enumerate(rows)]


def captum_pass(explainer, side, groups, settings, batched, **options):
    """Captum over the rows ``(index, ids)`` of ``groups``: ``{index: scores [n]}``; one call
    per row, or per group (``batched``)."""
    scores = {}
    for group in groups:
        for call in [group] if batched else [[row] for row in group]:
            found = captum_attribute(explainer, side, [ids for _, ids in call], settings,
                                     batched, **options)  # fmt: skip
            scores.update(zip([index for index, _ in call], found, strict=True))
    return scores


def time_captum(explainer, side, groups, settings, batched, seed=0, **options):
    """``(seconds of the best pass, its scores {index: [n]})``; torch seeded per pass."""
    found = {}

    def run():
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            # Captum's note that Lime/KernelShap fit one model per example of a batch.
            warnings.filterwarnings("ignore", "You are providing multiple inputs")
            found.update(captum_pass(explainer, side, groups, settings, batched, **options))

    return best_seconds(run), found


# ------------------------------------------------------------------ attn_audit (JAX)


def jax_scores(results: dict, batch: dict, explainer: str) -> dict[int, np.ndarray]:
    """``{index: scores of the real tokens [n]}`` from a ``BatchExplainer`` result."""
    return {index: np.asarray(results[explainer][row, 1 : len(ids) - 1], np.float64)
            for row, (index, ids) in zip(np.flatnonzero(batch["index"] >= 0), batch_rows(batch),
                                         strict=True)}  # fmt: skip


def time_jax(model, params, batches, explainer, settings, key):
    """One explainer's programs over ``batches``: compiled ahead of time, then run.

    Returns:
      ``(compile seconds, summed over the batch widths; steady seconds of the best pass over
      all batches; {index: scores [n]})``. The forward-pass program that ``BatchExplainer``
      also runs is compiled beforehand and not counted on either side.
    """
    jax.clear_caches()  # nothing traced or compiled by an earlier explainer is reused
    engine = explainers.BatchExplainer(model, params, (explainer,), key, settings)
    widths = {}
    for batch in batches:
        widths.setdefault(batch["token_ids"].shape, batch)
    for batch in widths.values():
        engine.compile(batch, "prediction")
    start = time.perf_counter()
    for batch in widths.values():
        engine.compile(batch, explainer)
    compile_seconds = time.perf_counter() - start
    found = {}

    def run():
        for batch in batches:
            found.update(jax_scores(engine(batch), batch, explainer))

    before = engine.seconds[explainer]
    passes = []
    while not passes or (sum(passes) < MIN_TIMING_SECONDS and len(passes) < 5):
        run()
        passes.append(engine.seconds[explainer] - before - sum(passes))
    return compile_seconds, min(passes), found


# ------------------------------------------------------------------ agreement


def differences(ours: dict, theirs: dict) -> tuple[float, float]:
    """``(max |ours − theirs|, max over instances of that ÷ the instance's max |theirs|)``."""
    largest, relative = 0.0, 0.0
    for index, reference in theirs.items():
        difference = float(np.max(np.abs(ours[index] - reference), initial=0.0))
        largest = max(largest, difference)
        scale = float(np.max(np.abs(reference), initial=0.0))
        relative = max(relative, difference / scale if scale > 0 else float(difference > 0))
    return largest, relative


def check_agreement(model, params, side, batch, settings, num_instances):
    """Ours, Captum one at a time and Captum batched on the first ``num_instances`` rows.

    Returns:
      ``{explainer: {"ours": (max abs, max rel), "batched": (max abs, max rel)}}``, each
      against Captum one at a time; raises AssertionError beyond the tolerances.
    """
    first = {name: value[:num_instances] for name, value in batch.items()}
    engine = explainers.BatchExplainer(model, params, DETERMINISTIC, settings=settings)
    results = engine(batch)
    figures = {}
    for explainer in DETERMINISTIC:
        ours = jax_scores(results, batch, explainer)
        one = captum_pass(explainer, side, [batch_rows(first)], settings, batched=False)
        batched = captum_pass(explainer, side, [batch_rows(first)], settings, batched=True)
        figures[explainer] = {"ours": differences(ours, one), "batched": differences(batched, one)}
        for what, (absolute, relative) in figures[explainer].items():
            if explainer == "occlusion":
                assert absolute <= OCCLUSION_ATOL, (explainer, what, absolute)
            else:
                assert relative <= GRADIENT_RTOL, (explainer, what, relative)
    return figures


def correlation(ours: dict, theirs: dict) -> float:
    """Mean over instances (with ≥ 3 tokens) of Pearson's r between two score vectors."""
    values = [
        np.corrcoef(ours[index], reference)[0, 1]
        for index, reference in theirs.items()
        if len(reference) >= 3 and np.std(reference) > 0 and np.std(ours[index]) > 0
    ]
    return float(np.mean(values)) if values else float("nan")  # fmt: skip


# ------------------------------------------------------------------ work done


def evaluations(explainer: str, settings, players: int) -> int:
    """Model evaluations (a backward pass counted with its forward) for one instance.

    ``players``: the positions the explainer perturbs. Ours: the n real tokens of the row
    (the explainers of ``explainers.engine.WHOLE_BATCH_EXPLAINERS`` run only each real row's
    own coalitions or points), the padded row's N = T − 2 slots for the others
    (``encoder_positions``); Captum: the n real tokens (one at a time), or the batch's
    largest n (batched: Captum's features are shared by a batch). One more evaluation on
    both sides for ŷ.
    """
    per_explainer = {
        "integrated_gradients": settings.ig_points, "grad_input": 1, "occlusion": players,
        "shapley_sampling": settings.shapley_permutations * players,
        "kernel_shap": settings.kernel_samples + 2, "lime": settings.lime_samples,
    }  # fmt: skip
    return 1 + per_explainer[explainer]


def bounded_positions(lengths: np.ndarray, counts: np.ndarray, width: int, per_step: int) -> int:
    """Positions the shortcut's chains run for a batch's needed (row, item) pairs: they run in
    row-major order, ``per_step`` at a time (``batch_engine.ragged_map``), each as many
    positions as the longest row of its step (``StateShortcut``'s ``longest``). The last
    step is filled with pairs that are not needed (row-major), which may raise its bound.

    Args:
      lengths: every row's length ``[B]``, padding rows (0) included.
      counts: each row's needed pairs ``[B]``, at most ``width`` (pairs per row, K).
    """
    rows = np.repeat(np.arange(len(lengths)), counts)
    per_step = min(per_step, len(lengths) * width)
    filler = np.repeat(np.arange(len(lengths)), width - counts)[: -len(rows) % per_step]
    slots = np.concatenate([rows, filler])
    total = 0
    for start in range(0, len(rows), per_step):
        needed = min(per_step, len(rows) - start)
        total += needed * int(lengths[slots[start : start + per_step]].max())
    return total


def jax_positions(explainer, settings, batches) -> float:
    """Encoder positions JAX runs per instance (evaluations × the positions each runs),
    padding included: every row of the batches; integrated gradients at the batch width,
    the BiLSTM shortcut's variants (occlusion's pairs, the coalitions) at their step's
    longest row (``bounded_positions``)."""
    total, instances = 0, 0
    budget = settings.max_sequence_positions
    for batch in batches:
        rows, width = batch["token_ids"].shape
        lengths = np.asarray(batch["lengths"])
        instances += int(np.sum(lengths > 0))
        per_step = rows * explainers.engine.coalitions_per_step(budget, rows, width)
        total += rows * width  # every row's forward pass for ŷ
        if explainer == "occlusion":
            # The masking shortcut (models.deletion_shortcut): each row's own ⌊(n − 1) / 2⌋
            # masked pairs (n tokens, SOS and EOS included; protocol.pair_values_of_batch),
            # two lanes (one per direction) of n + 1 steps for the step's longest n.
            pairs = np.maximum((lengths - 1) // 2, 0)
            pairs_per_step = max(PAIR_VARIANTS_PER_BUDGETED_VARIANT * per_step // 2, 1)
            slots = max((width - 1) // 2, 1)
            bounded = bounded_positions(lengths + 1, pairs, slots, pairs_per_step)
            total += bounded
        elif explainer == "integrated_gradients":
            # Each real row's points, differentiated through a scan of the batch width.
            total += int(np.sum(lengths > 0)) * settings.ig_points * width
        elif explainer in explainers.engine.WHOLE_BATCH_EXPLAINERS:
            # Each real row's own coalitions (sampled Shapley ∅ and N once and n − 1 per
            # order; KernelSHAP and LIME their samples), at the step's longest row.
            real = np.maximum(lengths - 2, 0)
            if explainer == "shapley_sampling":
                counts = np.where(real > 0, 2 + settings.shapley_permutations * (real - 1), 0)
                slots = 2 + settings.shapley_permutations * (width - 3)
            else:
                own = evaluations(explainer, settings, 0) - 1
                counts, slots = np.where(real > 0, own, 0), own
            total += bounded_positions(lengths, counts, slots, per_step)
        else:
            total += rows * (evaluations(explainer, settings, width - 2) - 1) * width
    return total / instances


def captum_positions(explainer, settings, groups, batched: bool) -> float:
    """Encoder positions Captum runs per instance: each instance alone at its own length
    (one at a time; also ``KernelShap`` and ``Lime``, which loop over a batch), or a
    group's rows at its longest length (batched)."""
    total, instances = 0, 0
    for group in groups:
        lengths = [len(ids) for _, ids in group]
        instances += len(lengths)
        if not batched or explainer in ("kernel_shap", "lime"):
            total += sum(evaluations(explainer, settings, n - 2) * n for n in lengths)
        else:
            longest = max(lengths)
            total += len(lengths) * evaluations(explainer, settings, longest - 2) * longest
    return total / instances


# ------------------------------------------------------------------ one explainer, both sides


def tune_captum(explainer, side, groups, settings, given: dict) -> tuple[dict, dict]:
    """Captum batched's setting for ``explainer``: ``given`` (from the flags) where set, else
    the fastest of ``CAPTUM_GRID``'s candidates on the middle group of ``groups``.

    Returns:
      ``(options for captum_attribute, {candidate: ms/instance on the tuning group})``.
    """
    if explainer not in CAPTUM_GRID:
        return {}, {}
    name, candidates = CAPTUM_GRID[explainer]
    if given.get(name) is not None:
        return {name: given[name] or None}, {}  # 0: IG's points all at once
    group = groups[len(groups) // 2]
    timings = {}
    for candidate in candidates:
        seconds, _ = time_captum(explainer, side, [group], settings, True, **{name: candidate})
        timings[candidate] = 1e3 * seconds / len(group)
    return {name: min(timings, key=timings.get)}, timings


def measure(explainer, model, params, side, batches, groups, settings, key, **given):
    """Times ``explainer`` on both sides; a dict of seconds, instance counts and agreement.

    JAX runs on all ``batches``; Captum on the rows of ``groups`` (its batches), batched
    with the settings of ``tune_captum`` (``given``: the flags' settings, None to tune).
    """
    compile_seconds, steady, ours = time_jax(model, params, batches, explainer, settings, key)
    options, tuning = tune_captum(explainer, side, groups, settings, given)
    one_seconds, one = time_captum(explainer, side, groups, settings, batched=False)
    batched_seconds, batched = time_captum(explainer, side, groups, settings, batched=True,
                                           **options)  # fmt: skip
    every_instance = [[row] for batch in batches for row in batch_rows(batch)]
    return {
        "captum_options": options, "captum_tuning": tuning,
        "jax_compile_s": compile_seconds, "jax_steady_s": steady, "jax_instances": len(ours),
        "widths": sorted({b["token_ids"].shape[1] for b in batches}),
        "captum_one_s": one_seconds, "captum_batched_s": batched_seconds,
        "captum_instances": len(one),
        "jax_mean_tokens": float(np.mean([len(s) for s in ours.values()])),
        "captum_mean_tokens": float(np.mean([len(s) for s in one.values()])),
        "ours_vs_one": differences(ours, one), "batched_vs_one": differences(batched, one),
        "r_ours_one": correlation(ours, one), "r_batched_one": correlation(batched, one),
        "jax_positions": jax_positions(explainer, settings, batches),
        "captum_one_positions": captum_positions(explainer, settings, groups, False),
        "captum_batched_positions": captum_positions(explainer, settings, groups, True),
        "floor_positions": captum_positions(explainer, settings, every_instance, False),
    }  # fmt: skip


# ------------------------------------------------------------------ the report


def per_instance_ms(row) -> tuple[float, float, float]:
    return (1e3 * row["jax_steady_s"] / row["jax_instances"],
            1e3 * row["captum_one_s"] / row["captum_instances"],
            1e3 * row["captum_batched_s"] / row["captum_instances"])  # fmt: skip


def table(rows: dict) -> list[str]:
    lines = [
        "| explainer | JAX compile s | JAX ms/instance (steady) | Captum one-at-a-time "
        "ms/instance | Captum batched ms/instance | speed-up (steady) vs one-at-a-time / "
        "batched |", "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for explainer, row in rows.items():
        ours, one, batched = per_instance_ms(row)
        lines.append(
            f"| {explainer} | {row['jax_compile_s']:.1f} | {ours:.1f} | {one:.1f} | "
            f"{batched:.1f} | {ratio(one / ours)} / {ratio(batched / ours)} |"
        )
    return lines


def ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 1 else f"{value:.1f}×"


def padding(batches: list[dict]) -> str:
    """How much of the JAX batches is instances: rows, and positions within the rows."""
    rows = sum(b["token_ids"].shape[0] for b in batches)
    instances = sum(int(np.sum(b["index"] >= 0)) for b in batches)
    positions = sum(b["token_ids"].size for b in batches)
    filled = sum(int(np.sum(b["lengths"])) for b in batches)
    return (
        f"The JAX batches hold {rows} rows for {instances} instances (each bucket's batches "
        "share its instances evenly, as the explain command's do; grad × input and occlusion "
        "run the padding rows, the other whole-batch explainers only their prediction); "
        f"tokens (SOS and EOS included) fill {filled / positions:.0%} of their positions."
    )


def render(rows, figures, context) -> str:
    settings = context["settings"]
    lines = [
        "# attn_audit's explainers against Captum", "",
        f"Machine: {context['machine']}. Load average (1/5/15 min) {context['load_before']} "
        f"before, {context['load_after']} after: other jobs share these cores, so the "
        "timings are noisy.", "",
        f"Command: `{context['command']}` on "
        f"`{context['workdir']}` (SST BiLSTM + tanh attention); {context['minutes']:.1f} "
        "minutes in all.", "",
        "Every explainer explains f(x) = p(ŷ | x), ŷ predicted on the full input; UNK masks a "
        "token; only the real tokens are scored (Captum's perturbation methods see only them "
        "and never perturb SOS, EOS or padding).", "",
        f"## Agreement (first {context['agreement_instances']} test instances, checked before "
        "timing)", "",
        "Against Captum one instance at a time: largest absolute difference, and relative to "
        "the instance's largest score.", "",
        "| explainer | Captum method | ours: max abs | ours: max rel | Captum batched: max abs "
        "| Captum batched: max rel | required |", "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    methods = {
        "integrated_gradients": f"LayerIntegratedGradients (embedding layer, {settings.ig_points} "
        f"points, {settings.ig_rule})",
        "grad_input": "LayerGradientXActivation (embedding layer)",
        "occlusion": "FeatureAblation (baseline UNK)",
    }
    for explainer, found in figures.items():
        required = (f"abs ≤ {OCCLUSION_ATOL:g}" if explainer == "occlusion"
                    else f"rel ≤ {GRADIENT_RTOL:g}")  # fmt: skip
        (ours_abs, ours_rel), (batched_abs, batched_rel) = found["ours"], found["batched"]
        lines.append(f"| {explainer} | {methods[explainer]} | {ours_abs:.1e} | {ours_rel:.1e} | "
                     f"{batched_abs:.1e} | {batched_rel:.1e} | {required} |")  # fmt: skip
    if rows:
        lines += [
            "", "On every timed instance (the timing runs' own scores; sampled explainers: "
            "mean Pearson r between ours and Captum's one-at-a-time estimate, and between "
            "Captum batched and one-at-a-time, which draw other samples):", "",
            "| explainer | instances | ours vs Captum | Captum batched vs one-at-a-time |",
            "|---|---|---|---|",
        ]  # fmt: skip
        for explainer, row in rows.items():
            if explainer in DETERMINISTIC:
                ours = "max abs {:.1e}, max rel {:.1e}".format(*row["ours_vs_one"])
                batched = "max abs {:.1e}, max rel {:.1e}".format(*row["batched_vs_one"])
            else:
                ours, batched = f"r = {row['r_ours_one']:.2f}", f"r = {row['r_batched_one']:.2f}"
            lines.append(f"| {explainer} | {row['captum_instances']} | {ours} | {batched} |")
        lines += ["", f"## Speed ({context['limit']} SST test instances, batches of up to "
                  f"{context['batch_size']})", "", *table(rows), ""]  # fmt: skip
        lines += speed_notes(rows, context)
        lines += work_table(rows)
        lines += floor_table(rows, context)
        lines += process_lines(rows, context)
    return "\n".join(lines) + "\n"


def speed_notes(rows, context) -> list[str]:
    settings = context["settings"]
    widths = sorted({w for row in rows.values() for w in row["widths"]})
    notes = [
        f"- **JAX compile s**: ahead-of-time compilation of the explainer's program at each "
        f"batch width ({', '.join(map(str, widths))}), summed, with JAX's caches cleared "
        "first and no persistent cache; paid once per process and shape, apart from the "
        "steady time. **JAX ms/instance**: the best of repeated passes over all batches "
        "(padding rows included: their cost counts), divided by the real instances. "
        f"{context['padding']}",
        "- **Captum one-at-a-time**: one `attribute` call per instance with Captum's defaults "
        "(`internal_batch_size=None`: IG's points in one pass; `perturbations_per_eval=1`), "
        "after a forward pass for ŷ. **Captum batched**: its instances sorted by length, "
        f"{context['batch_size']} a call; `KernelShap` and `Lime` fit one model per example "
        "and loop over a batch themselves, so they get one instance a call. Its settings, "
        "tuned per explainer on the middle group of its sample (ms/instance of each "
        f"candidate; the fastest taken): {tuning_text(rows)}.",
        f"- PyTorch runs with {context['torch_threads']} intra-op thread(s). "
        f"{context['thread_probe']}",
        f"- Work per instance with n real tokens: IG {settings.ig_points} gradients "
        f"({settings.ig_rule}); occlusion n forward passes; Shapley sampling "
        f"{settings.shapley_permutations} permutations (ours: {settings.shapley_permutations // 2}"
        " random orders and their reverses, n − 1 coalitions each, ∅ and N once, at the batch "
        f"width; Captum: {settings.shapley_permutations} random orders, n forward passes each, "
        f"N when batched); KernelSHAP {settings.kernel_samples} sampled coalitions plus the "
        f"full and the empty one (Captum `n_samples={settings.kernel_samples + 2}`); LIME "
        f"{settings.lime_samples} samples. Ours all at the batch width, padding rows none; "
        "occlusion through the BiLSTM's masking shortcut (the forward prefix and backward "
        "suffix a masked token leaves unchanged are reused, two variants share a lane).",
        "- **LIME differs by design**: ours is `lime`'s text explainer (SPEC §7: remove "
        "s ~ U{1 … n−1} tokens, kernel exp(−d²/25²) of 100 × the cosine distance between the "
        "binary masks, ridge α = 1); Captum's `Lime` defaults draw Bernoulli(½) masks, weigh "
        "a sample by exp(−d²/2) of the cosine distance between the token-id vectors, and fit "
        "`SkLearnLasso(alpha=0.01)`. Same number of model evaluations; the scores are not "
        "expected to agree.",
    ]  # fmt: skip
    if rows:
        row = next(iter(rows.values()))
        every = row["jax_instances"] / row["captum_instances"]
        notes.append(
            f"- Captum timed on {row['captum_instances']} instances stratified by length (the "
            f"{row['jax_instances']} sorted by length in groups of {context['batch_size']}, "
            f"every ~{every:.0f}th group; "
            f"mean {row['captum_mean_tokens']:.1f} real tokens, against "
            f"{row['jax_mean_tokens']:.1f} over all {row['jax_instances']}); JAX on all of "
            "them. Per-instance times compared."
        )
    return notes + [""]


def tuning_text(rows) -> str:
    """``explainer name=value`` (tuned: ``candidate ms`` each) for the report."""
    parts = []
    for explainer, row in rows.items():
        for name, value in row["captum_options"].items():
            tried = ", ".join(f"{candidate} {ms:.1f}"
                              for candidate, ms in row["captum_tuning"].items())  # fmt: skip
            parts.append(f"{explainer} `{name}={value}`" + (f" ({tried})" if tried else " (given)"))
    return "; ".join(parts) or "none"


GRADIENT_EXPLAINERS = ("integrated_gradients", "grad_input")


def position_flops(config) -> float:
    """FLOPs of one BiLSTM position, both directions (``2 · 2 · 4H (E + H)``; the attention
    and the decoder, under 3% at E = 50, H = 128, are left out)."""
    return 2 * 2 * 4 * config.hidden_size * (config.embed_dim + config.hidden_size)


def floor_table(rows, context) -> list[str]:
    """Each explainer's compute floor: the FLOPs its estimator needs at the instances' real
    lengths over this machine's matmul rate, against JAX's steady time."""
    flops, peak = context["position_flops"], context["matmul_gflops"]
    lines = [
        "## Compute floor", "",
        "The FLOPs each estimator needs on the timed instances at their real lengths (its "
        "model evaluations × each instance's own length, SOS and EOS included: the "
        "\"one-at-a-time\" positions over all timed instances) × "
        f"{flops / 1e3:.0f} k FLOPs per BiLSTM position (`2 · 2 · 4H (E + H)`; ×3 for a "
        "forward and backward pass), over a float32 2048² matmul's rate measured in this "
        f"run, {peak:.0f} GFLOP/s: no padding, no wasted slot, every FLOP at matmul speed.",
        "", "| explainer | floor MFLOP/instance | floor ms/instance | JAX ms/instance | "
        "JAX ÷ floor |", "|---|---|---|---|---|",
    ]  # fmt: skip
    for explainer, row in rows.items():
        passes = 3 if explainer in GRADIENT_EXPLAINERS else 1
        needed = row["floor_positions"] * flops * passes
        floor_ms = 1e3 * needed / (peak * 1e9)
        ours = per_instance_ms(row)[0]
        lines.append(f"| {explainer} | {needed / 1e6:,.0f} | {floor_ms:.2f} | {ours:.1f} | "
                     f"{ours / floor_ms:.1f}× |")  # fmt: skip
    return lines + [""]


def work_table(rows) -> list[str]:
    lines = [
        "## Work done", "",
        "Encoder positions run per instance: model evaluations × the sequence width they run "
        "at, padding rows and positions included (a backward pass counted with its forward; "
        "see `jax_positions` and `captum_positions`), and the rate at which each side gets "
        "through them.", "",
        "| explainer | JAX positions | Captum one-at-a-time positions | Captum batched "
        "positions | JAX k positions/s | Captum one-at-a-time k/s | Captum batched k/s |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for explainer, row in rows.items():
        work = [row[f"{side}_positions"] for side in ("jax", "captum_one", "captum_batched")]
        rates = [w / ms for w, ms in zip(work, per_instance_ms(row), strict=True)]  # k/s
        lines.append(f"| {explainer} | " + " | ".join(f"{w:,.0f}" for w in work) + " | "
                     + " | ".join(f"{r:.1f}" for r in rates) + " |")  # fmt: skip
    return lines + [""]


def thread_probe(side, batches) -> str:
    """A forward pass of 1 and of 64 rows with 1 and with 2 ATen threads, for the report."""
    threads = torch.get_num_threads()
    token_ids, lengths = padded_tensors([ids for _, ids in batch_rows(batches[0])])
    shapes = {1: (token_ids[:1], lengths[:1]), 64: (token_ids[:1].repeat(64, 1),
                                                    lengths[:1].repeat(64))}  # fmt: skip
    timings = []
    for count in (1, 2):
        torch.set_num_threads(count)
        for rows, (ids, length) in shapes.items():
            with torch.no_grad():
                side.probabilities(ids, length)
                start = time.perf_counter()
                for _ in range(10):
                    side.probabilities(ids, length)
            timings.append(f"{rows} row(s) {count} thread(s) "
                           f"{(time.perf_counter() - start) * 100:.1f} ms")  # fmt: skip
    torch.set_num_threads(threads)
    return "A forward pass of the twin, measured at start: " + "; ".join(timings) + "."


def command() -> str:
    """The command line that ran this benchmark, with the flags given (not the defaults)."""
    holders = (_WORKDIR, _DATA_DIR, _LIMIT, _CAPTUM_LIMIT, _AGREEMENT_INSTANCES, _BATCH_SIZE,
               _PERTURBATIONS_PER_EVAL, _IG_INTERNAL_BATCH_SIZE, _TORCH_THREADS, _EXPLAINERS,
               _OUT)  # fmt: skip
    return command_line("benchmarks.explain_vs_captum", holders)


# ------------------------------------------------------------------ the whole explain process


def explain_process(workdir, data_dir, limit) -> dict:
    """The whole ``experiments.explain`` process (every default explainer) over the timed
    instances, as a new user runs it: a fresh copy of the run folder (checkpoint, vocabulary,
    configuration; no earlier outputs) and an empty JAX cache.

    Returns:
      ``{"seconds": wall seconds from launch to exit, "timings": its summary's timings}``.
    """
    with tempfile.TemporaryDirectory(prefix="explain_process_") as folder:
        copy = pathlib.Path(folder) / "run"
        shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns(
            "audit", "explain", "faithfulness", "exported", "report.html"))  # fmt: skip
        command = [sys.executable, "-m", "experiments.explain", f"--workdir={copy}",
                   "--split=test", *([f"--data_dir={data_dir}"] if data_dir else []),
                   *([f"--limit={limit}"] if limit else [])]  # fmt: skip
        environment = {**os.environ, "ATTN_AUDIT_JAX_CACHE": str(pathlib.Path(folder) / "cache")}
        start = time.perf_counter()
        done = subprocess.run(command, env=environment, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        summary = json.loads((copy / "explain" / "test" / "summary.json").read_text())
    timings = summary["provenance"]["timings"]
    return {"seconds": seconds, "timings": {k: v for k, v in timings.items() if k != "runs"}}


def process_lines(rows, context) -> list[str]:
    """The whole explain process against tuned Captum's total for the same instances."""
    process = context["process"]
    if not process:
        return []
    timings = process["timings"]
    instances = next(iter(rows.values()))["jax_instances"]
    captum_batched = sum(per_instance_ms(row)[2] for row in rows.values()) * instances / 1e3
    captum_one = sum(per_instance_ms(row)[1] for row in rows.values()) * instances / 1e3
    return [
        "## The whole explain process (cold cache)", "",
        f"`python -m experiments.explain --workdir=<fresh copy of {context['workdir']}> "
        "--split=test` with every default explainer, an empty `ATTN_AUDIT_JAX_CACHE` and no "
        "earlier outputs, launched from this benchmark: start-up, data, compilation, the "
        "batches, records, summary and report page. Captum's totals: its per-instance time "
        "above (the stratified sample) × the same instances, summed over the six explainers "
        "it has (ours also runs attention, gradient, grad_l2 and the random floor).", "",
        "| what | seconds | instances/s | ours ÷ |", "|---|---|---|---|",
        f"| `experiments.explain`, whole process | {process['seconds']:.1f} | "
        f"{instances / process['seconds']:.1f} | 1.0× |",
        f"| its batches (first to last) | {timings['wall_seconds']:.1f} | "
        f"{instances / timings['wall_seconds']:.1f} | — |",
        f"| Captum batched, six explainers (scaled) | {captum_batched:.1f} | "
        f"{instances / captum_batched:.1f} | {ratio(captum_batched / process['seconds'])} |",
        f"| Captum one at a time, six explainers (scaled) | {captum_one:.1f} | "
        f"{instances / captum_one:.1f} | {ratio(captum_one / process['seconds'])} |", "",
        f"Compilation in the process: {timings['compile_seconds']:.1f} s of compile-thread "
        f"time over {timings['shapes']} widths, of which the batches waited "
        f"{timings['compile_wait_seconds']:.1f} s.", "",
    ]  # fmt: skip


def main(argv):
    del argv
    start = time.perf_counter()
    load_before = load_average()
    if _TORCH_THREADS.value:
        torch.set_num_threads(_TORCH_THREADS.value)
    names = tuple(_EXPLAINERS.value or EXPLAINERS)
    unknown = sorted(set(names) - set(EXPLAINERS))
    if unknown:
        raise app.UsageError(f"Unknown explainers {unknown}; choose from {list(EXPLAINERS)}.")
    run = load_run(_WORKDIR.value)
    model = auditable_model(run.model_config)
    side = CaptumTwin(load_torch_model(to_torch_state_dict(run.params, run.model_config),
                                       run.model_config))  # fmt: skip
    dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
    split = first_instances(data.encode_split(dataset, "test", run.vocab), _LIMIT.value)
    # The explain command's widths (ExplainOptions.num_buckets), fitted to the timed instances.
    # Balanced as the explain command's batches are (batch_runner.run_batches).
    widths = split_boundaries(split, explainers.ExplainOptions.num_buckets)
    batches = list(data.batches(split, _BATCH_SIZE.value, widths, balanced_multiple=1))
    settings = explainers.ExplainerSettings()
    probe = thread_probe(side, batches)
    print(probe, flush=True)

    figures = check_agreement(model, run.params, side, batches[0], settings,
                              _AGREEMENT_INSTANCES.value)  # fmt: skip
    print("agreement:", figures, flush=True)
    given = {"perturbations_per_eval": _PERTURBATIONS_PER_EVAL.value,
             "ig_internal_batch_size": _IG_INTERNAL_BATCH_SIZE.value}  # fmt: skip
    groups = captum_groups(batches, _CAPTUM_LIMIT.value, _BATCH_SIZE.value)
    key = jax.random.key(0)
    rows = {}
    for explainer in names:
        rows[explainer] = measure(explainer, model, run.params, side, batches, groups,
                                  settings, key, **given)  # fmt: skip
        print(explainer, rows[explainer], flush=True)
    process = None
    if _EXPLAIN_PROCESS.value and set(names) == set(EXPLAINERS):
        process = explain_process(_WORKDIR.value, _DATA_DIR.value, _LIMIT.value)
        print("explain process:", process, flush=True)
    context = {
        "machine": machine(), "load_before": load_before, "load_after": load_average(),
        "command": command(),
        "workdir": _WORKDIR.value, "minutes": (time.perf_counter() - start) / 60,
        "agreement_instances": _AGREEMENT_INSTANCES.value, "limit": len(split),
        "batch_size": _BATCH_SIZE.value, "settings": settings, "thread_probe": probe,
        "torch_threads": torch.get_num_threads(), "padding": padding(batches),
        "position_flops": position_flops(run.model_config),
        "matmul_gflops": _machine.matmul_peak(), "process": process,
    }  # fmt: skip
    report = render(rows, figures, context)
    write_results(pathlib.Path(_OUT.value) / RESULTS_FILE, report)
    print(report)


if __name__ == "__main__":
    app.run(main)
