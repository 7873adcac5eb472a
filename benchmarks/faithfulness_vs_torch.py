r"""attn_audit's batched faithfulness metrics against an eager PyTorch peer: agreement, speed.

  python -m benchmarks.faithfulness_vs_torch [--workdir=runs/sst_lstm_tanh --limit=128
                                              --torch_limit=32 --torch_threads=1
                                              --batch_size=32]

The metrics (SPEC §8) of every explainer's scores: ERASER's comprehensiveness and
sufficiency at k ∈ {1, 5, 10, 20, 50}%, the top ``max(1, ⌈k·n⌉)`` tokens deleted and masked
(UNK), and decision flips (tokens deleted one by one in the explainer's order until the
predicted class changes). The scores are the run's explanations
(``<workdir>/explain/test/records.jsonl``, ``python -m experiments.explain``); when there are
none, cheap ones are computed here (attention, gradient, random), so the benchmark still runs.

- **Ours**: ``attn_audit.faithfulness.BatchFaithfulness`` on the first ``--limit`` test
  instances in the runner's batches (``split_boundaries(split, 4)`` widths,
  ``data.batches``): one jitted program per metric (ERASER with both removals, flips) and
  width, every explainer at once. Compiled ahead of time (``.lower().compile()``), timed
  apart per program and width; then steady passes over all batches.
- **PyTorch loop**, the way ERASER's reference code and ferret do it, on the PyTorch twin
  (``tests/reference/torch_model.py``) with the run's weights: one instance at a time, for
  each explainer, removal and k, the perturbed token list is built and the twin called
  (one forward pass per perturbation, ``torch.no_grad()``); the flip loop removes tokens
  one by one and stops at the first flip (work ours does not skip: it evaluates every
  prefix of the padded width).
- **PyTorch batched per instance**: all perturbations of one instance (ERASER's and every
  prefix of the flip loop) as one padded forward pass.

The PyTorch sides run on ``--torch_limit`` instances spread evenly over the ``--limit``.

1. Agreement first: on ``--agreement_instances`` instances (spread over the ``--limit``),
   the loop's comprehensiveness and sufficiency must equal ours to 1e-4 (absolute) and its
   flip fractions, flips and top-1 flips must be equal; the batched variant must equal the
   loop the same way. Nothing is timed on the PyTorch side, and no report written, unless
   they do. The timed instances are compared again (same tolerances) before the report.
2. Writes ``benchmarks/FAITHFULNESS_RESULTS.md`` (hand-written remarks below its marker line
   are kept) and prints it.

Both sides count the forward passes they actually run (ours: padding rows, the chunks'
filler rows and every prefix up to T − 2 included).

Expected run time with the defaults on the 2-core machine: about 2 minutes (1.6 measured,
with another job on the cores): compiling our 8 programs (~30 s), one steady pass of ours
(~45 s), the PyTorch loop (~15 s).
"""

import dataclasses
import json
import os
import pathlib
import time

import jax
import numpy as np
import torch
from absl import app, flags

from attn_audit import data, explainers
from attn_audit.audits import auditable_model
from attn_audit.batch_runner import first_instances, split_boundaries
from attn_audit.data.vocab import PAD
from attn_audit.explainers.engine import coalitions_per_step
from attn_audit.explainers.runner import explanation_records
from attn_audit.faithfulness import BatchFaithfulness, FaithfulnessSettings
from attn_audit.interop import to_torch_state_dict
from attn_audit.report.records import read_records
from attn_audit.training.run_folder import load_run
from benchmarks import _machine
from benchmarks._results import REMARKS_MARKER, write_results  # noqa: F401
from tests.reference.torch_model import load_torch_model

# Explainers computed here when the run has no explanation records: the cheap ones.
FALLBACK_EXPLAINERS = ("attention", "gradient", "random")
# float32 on both sides, the same inputs: measured ~1e-7.
ATOL = 1e-4
FLIP_ATOL = 1e-6  # flip fractions j/n: float32 (ours) against float64 (the loop)
# A measurement is repeated until it has taken this long (at most 5 times); the best counts.
MIN_TIMING_SECONDS = 2.0
RESULTS_FILE = "FAITHFULNESS_RESULTS.md"
SIDES = ("ours", "loop", "batched")
PARTICIPLES = {"delete": "deleted", "mask": "masked"}
SIDE_NAMES = {
    "ours": "attn_audit (JAX, `BatchFaithfulness`)",
    "loop": "PyTorch loop (ERASER / ferret style)",
    "batched": "PyTorch batched per instance",
}


@dataclasses.dataclass(frozen=True)
class Options:
    """What ``run`` measures (the command's flags)."""

    workdir: str = "runs/sst_lstm_tanh"
    data_dir: str | None = None
    explanations: str | None = None  # default <workdir>/explain/test/records.jsonl
    limit: int = 128
    torch_limit: int = 32
    agreement_instances: int = 4
    batch_size: int = 32
    num_buckets: int = 4  # the runner's (ExplainOptions.num_buckets)
    torch_threads: int = 1
    explainers: tuple[str, ...] | None = None  # default: every explainer of the records
    out: str = "benchmarks"
    command: str = "python -m benchmarks.faithfulness_vs_torch"


def machine() -> str:
    return _machine.describe(
        f"jax {jax.__version__} ({jax.default_backend()})",
        f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads)",
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


def spread(count: int, total: int) -> list[int]:
    """``count`` indices spread evenly over ``0 … total − 1``."""
    return sorted({int(i) for i in np.linspace(0, total - 1, min(count, total)).round()})


# ------------------------------------------------------------------ the explanations


def explanation_scores(path: pathlib.Path, split, names=None) -> tuple[dict, tuple[str, ...]]:
    """The records of ``path`` for the instances of ``split``: ``({index: record}, explainers)``.

    ``names``: the explainers to judge (default: those of the explain run's config, else every
    score list of the first record).
    """
    config_path = path.parent / "explain_config.json"
    wanted = set(range(len(split.labels)))
    records = {r["index"]: r for r in read_records(path) if r["index"] in wanted}
    missing = sorted(wanted - set(records))
    if missing:
        raise ValueError(f"{path} has no record of instances {missing[:5]} …; explain them first.")
    for index, record in records.items():
        if record["id"] != split.examples[index].id:
            expected = split.examples[index].id
            raise ValueError(f"{path}: instance {index} is {record['id']!r}, the split's is "
                             f"{expected!r}: another data set or split.")  # fmt: skip
    if names is None:
        if config_path.exists():
            names = json.loads(config_path.read_text())["explainers"]
        else:
            names = [n for n in explainers.EXPLAINERS if n in records[0]]
    unknown = sorted(set(names) - set(records[0]))
    if unknown:
        raise ValueError(f"{path} has no scores of {unknown}.")
    return records, tuple(names)


def computed_scores(model, params, batches, split) -> tuple[dict, tuple[str, ...]]:
    """No explanation records: ``FALLBACK_EXPLAINERS``' scores, as ``explanation_scores``."""
    engine = explainers.BatchExplainer(model, params, FALLBACK_EXPLAINERS, jax.random.key(0))
    records = {}
    for batch in batches:
        for record in explanation_records(batch, engine(batch), split, engine.explainers):
            records[record["index"]] = record
    return records, engine.explainers


def real_rows(batch: dict) -> list[tuple[int, int, np.ndarray]]:
    """``(row, index, token ids [length])`` of the real rows of a padded batch."""
    return [(int(row), int(batch["index"][row]), batch["token_ids"][row, : batch["lengths"][row]])
            for row in np.flatnonzero(batch["index"] >= 0)]  # fmt: skip


def instance_items(batches, records, names, indices=None) -> list[tuple]:
    """``(index, token ids [length], [scores [n] float32 or None per explainer])`` in data
    order, for ``indices`` (all when None)."""
    items = []
    for batch in batches:
        for _, index, ids in real_rows(batch):
            if indices is None or index in indices:
                found = [records[index].get(name) for name in names]
                scores = [None if s is None else np.asarray(s, np.float32) for s in found]
                items.append((index, ids.astype(np.int64), scores))
    return sorted(items, key=lambda item: item[0])


# ------------------------------------------------------------------ the PyTorch peer


def top_count(num_tokens: int, percent: int) -> int:
    """``max(1, ⌈percent · n / 100⌉)``, exactly."""
    return max(1, (percent * num_tokens + 99) // 100)


def ranking(scores: np.ndarray) -> np.ndarray:
    """The real tokens' positions (1 … n) by score, highest first, ties by position."""
    return 1 + np.argsort(-scores, kind="stable")


def removed(ids: np.ndarray, positions: np.ndarray, removal: str, mask_token_id: int):
    """``ids`` with ``positions`` masked, or deleted (the rest closing up, in order)."""
    if removal == "mask":
        out = ids.copy()
        out[positions] = mask_token_id
        return out
    return np.delete(ids, positions)


def padded_tensors(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[B, max length]`` (PAD after each row) and lengths ``[B]``, long."""
    lengths = [len(ids) for ids in rows]
    token_ids = torch.full((len(rows), max(lengths)), PAD, dtype=torch.long)
    for row, ids in enumerate(rows):
        token_ids[row, : len(ids)] = torch.from_numpy(ids)
    return token_ids, torch.as_tensor(lengths, dtype=torch.long)


def empty_values(num_explainers: int, settings) -> dict[str, np.ndarray]:
    """The metrics' arrays of one instance, NaN (False) where an explainer has no scores."""
    curve = (len(settings.removals), num_explainers, len(settings.percents))
    return {"comprehensiveness": np.full(curve, np.nan), "sufficiency": np.full(curve, np.nan),
            "flip_fraction": np.full(num_explainers, np.nan),
            "flipped": np.zeros(num_explainers, bool), "top1_flip": np.zeros(num_explainers, bool),
            "available": np.zeros(num_explainers, bool)}  # fmt: skip


class TorchFaithfulness:
    """ERASER and decision flips on the PyTorch twin, eagerly; counts its forward passes.

    The twin fills SOS, EOS and PAD with ``-inf`` before the attention softmax, which is NaN
    when no real token is left (every flip loop that reaches its last prefix, and
    comprehensiveness at 50% of a one-token instance). Ours defines α = 0 there
    (``models.masked_softmax``): context 0, the output layer's bias alone; so does this peer.
    """

    def __init__(self, twin, settings: FaithfulnessSettings):
        if twin.config.task != "classification":
            raise ValueError("The PyTorch peer handles classification models only.")
        self.twin, self.settings = twin, settings
        self.forwards, self.positions = 0, 0
        self.seconds = {"eraser": 0.0, "flip": 0.0}
        with torch.no_grad():
            logits = twin.decoder.linear_1(torch.zeros(1, twin.config.state_dim))
            self._empty = (torch.cat([1 - torch.sigmoid(logits), torch.sigmoid(logits)], -1)
                           if twin.config.binary else torch.softmax(logits, -1))[0]  # fmt: skip

    def probabilities(self, rows: list[np.ndarray]) -> np.ndarray:
        """``p(· | row)`` ``[B, C]`` (float32 → float64) of rows of token ids, one forward."""
        token_ids, lengths = padded_tensors(rows)
        self.forwards += len(rows)
        self.positions += token_ids.numel()
        with torch.no_grad():
            found = self.twin(token_ids, lengths)[0]
            found = torch.where((lengths <= 2)[:, None], self._empty, found)
        return found.numpy().astype(np.float64)

    def _remove(self, ids, positions, removal):
        return removed(ids, positions, removal, self.settings.mask_token_id)

    def loop(self, ids: np.ndarray, scores: list) -> dict[str, np.ndarray]:
        """One instance as ERASER's reference code and ferret do it: a forward pass per
        perturbation; the flip loop stops at the first flip."""
        settings, values = self.settings, empty_values(len(scores), self.settings)
        num_tokens = len(ids) - 2
        full = self.probabilities([ids])[0]
        target = int(np.argmax(full))
        for x, explainer_scores in enumerate(scores):
            if explainer_scores is None:
                continue
            values["available"][x] = True
            order = ranking(explainer_scores)
            start = time.perf_counter()
            for r, removal in enumerate(settings.removals):
                for k, percent in enumerate(settings.percents):
                    count = top_count(num_tokens, percent)
                    without = self.probabilities([self._remove(ids, order[:count], removal)])
                    only = self.probabilities([self._remove(ids, order[count:], removal)])
                    values["comprehensiveness"][r, x, k] = full[target] - without[0, target]
                    values["sufficiency"][r, x, k] = full[target] - only[0, target]
            middle = time.perf_counter()
            values["flip_fraction"][x] = 1.0
            for j in range(1, num_tokens + 1):
                found = self.probabilities([self._remove(ids, order[:j], settings.flip_removal)])
                if int(np.argmax(found[0])) != target:
                    values["flip_fraction"][x] = j / max(num_tokens, 1)
                    values["flipped"][x], values["top1_flip"][x] = True, j == 1
                    break
            self.seconds["eraser"] += middle - start
            self.seconds["flip"] += time.perf_counter() - middle
        return values

    def batched(self, ids: np.ndarray, scores: list) -> dict[str, np.ndarray]:
        """One instance, every perturbation (ERASER's, and every prefix of the flip loop: no
        early stop) in one padded forward pass."""
        settings, values = self.settings, empty_values(len(scores), self.settings)
        num_tokens = len(ids) - 2
        rows, orders = [ids], {}
        for x, explainer_scores in enumerate(scores):
            if explainer_scores is None:
                continue
            orders[x] = order = ranking(explainer_scores)
            for removal in settings.removals:
                for percent in settings.percents:
                    count = top_count(num_tokens, percent)
                    rows += [self._remove(ids, order[:count], removal),
                             self._remove(ids, order[count:], removal)]  # fmt: skip
            rows += [self._remove(ids, order[:j], settings.flip_removal)
                     for j in range(1, num_tokens + 1)]  # fmt: skip
        found = self.probabilities(rows)
        target = int(np.argmax(found[0]))
        curve = (len(settings.removals), len(settings.percents), 2)
        per_explainer = int(np.prod(curve)) + num_tokens
        for number, x in enumerate(orders):
            block = found[1 + number * per_explainer : 1 + (number + 1) * per_explainer]
            lost = (found[0, target] - block[: int(np.prod(curve)), target]).reshape(curve)
            values["available"][x] = True
            values["comprehensiveness"][:, x] = lost[..., 0]
            values["sufficiency"][:, x] = lost[..., 1]
            changed = np.argmax(block[int(np.prod(curve)) :], axis=-1) != target
            first = int(np.argmax(changed)) + 1
            values["flipped"][x], values["top1_flip"][x] = changed.any(), changed[0]
            values["flip_fraction"][x] = first / max(num_tokens, 1) if changed.any() else 1.0
        return values

    def run(self, items, style: str) -> dict[int, dict]:
        """``style`` ``"loop"`` or ``"batched"`` over ``instance_items``: ``{index: values}``."""
        method = self.loop if style == "loop" else self.batched
        return {index: method(ids, scores) for index, ids, scores in items}


def time_torch(peer: TorchFaithfulness, items, style: str) -> dict:
    """The best pass of ``style`` over ``items``; its values, forward passes and positions."""
    found = {}
    counts = {}

    def run():
        before = (peer.forwards, peer.positions, dict(peer.seconds))
        found.update(peer.run(items, style))
        counts.update(forwards=peer.forwards - before[0], positions=peer.positions - before[1])
        counts.update({f"{m}_s": peer.seconds[m] - before[2][m] for m in peer.seconds})

    seconds = best_seconds(run)
    return {"steady_s": seconds, "instances": len(items), "values": found, **counts,
            "mean_tokens": float(np.mean([len(ids) - 2 for _, ids, _ in items]))}  # fmt: skip


# ------------------------------------------------------------------ ours (JAX)


def ragged_slots(needed: int, per_step: int) -> int:
    """Pairs ``batch_engine.ragged_map`` evaluates for ``needed`` pairs at ``per_step`` a step
    (whole steps: the last one's empty slots run too)."""
    return -(-needed // per_step) * per_step if needed else 0


def our_forwards(batch: dict, num_explainers: int, settings) -> dict[str, int]:
    """Forward passes our two programs run on a batch of ``[B, T]``: one original pass per row
    and program, then, over the whole batch in steps of ``B · chunk`` (``BatchFaithfulness``),
    each removal's ``2·K·X`` ERASER coalitions of every instance row and the ``X·n`` flip
    prefixes of every instance row (n its real tokens; padding rows none)."""
    rows, width = batch["token_ids"].shape
    real = np.asarray(batch["lengths"])[np.asarray(batch["index"]) >= 0] - 2
    step = coalitions_per_step(settings.max_sequence_positions, rows, width)
    eraser = num_explainers * 2 * len(settings.percents)
    flip = num_explainers * (width - 2)
    eraser_slots = ragged_slots(len(real) * eraser, rows * min(step, eraser))
    flip_slots = ragged_slots(int(num_explainers * real.sum()), rows * min(step, flip))
    return {"eraser": rows + len(settings.removals) * eraser_slots, "flip": rows + flip_slots}


def our_values(results: dict, batch: dict) -> dict[int, dict]:
    """``{index: values}`` (as ``TorchFaithfulness``'s) of a ``BatchFaithfulness`` result."""
    found = {}
    for row, index, _ in real_rows(batch):
        available = results["available"][row]
        values = {"available": available.copy()}
        for name in ("comprehensiveness", "sufficiency"):
            curves = np.asarray(results[name][row], np.float64)  # [R, X, K]
            values[name] = np.where(available[None, :, None], curves, np.nan)
        fraction = np.asarray(results["flip_fraction"][row], np.float64)
        values["flip_fraction"] = np.where(available, fraction, np.nan)
        for name in ("flipped", "top1_flip"):
            values[name] = results[name][row] & available
        found[index] = values
    return found


def time_ours(model, params, batches, records, names, settings) -> dict:
    """Our programs over ``batches``: compiled ahead of time (per program and width, timed
    apart, caches cleared first), then the best steady pass over all batches."""
    jax.clear_caches()
    engine = BatchFaithfulness(model, params, names, records, settings)
    shapes = {}
    for batch in batches:
        shapes.setdefault(batch["token_ids"].shape, batch)
    compile_seconds = {}
    for program in engine.programs:
        for shape, batch in shapes.items():
            start = time.perf_counter()
            engine.compile(batch, program)
            compile_seconds[(program, shape[1])] = time.perf_counter() - start
    found, program_seconds = {}, {}

    def run():
        before = dict(engine.seconds)
        for batch in batches:
            found.update(our_values(engine(batch), batch))
        program_seconds.update({f"{m}_s": engine.seconds[m] - before[m] for m in engine.seconds})

    seconds = best_seconds(run)
    forwards = {"eraser": 0, "flip": 0}
    positions = 0
    for batch in batches:
        counts = our_forwards(batch, len(names), settings)
        forwards = {m: forwards[m] + counts[m] for m in forwards}
        positions += sum(counts.values()) * batch["token_ids"].shape[1]
    lengths = [int(n) - 2 for b in batches for n in b["lengths"][b["index"] >= 0]]
    return {
        "compile_s": compile_seconds, "steady_s": seconds, "instances": len(found),
        "values": found, "forwards": sum(forwards.values()), "forwards_by_program": forwards,
        "positions": positions, "mean_tokens": float(np.mean(lengths)), **program_seconds,
        "widths": sorted(w for _, w in shapes),
    }  # fmt: skip


# ------------------------------------------------------------------ agreement


def compare(values: dict, reference: dict) -> dict:
    """``values`` against ``reference`` (``{index: values}``) on ``reference``'s instances."""
    figures = {"instances": len(reference), "comprehensiveness": 0.0, "sufficiency": 0.0,
               "flips": 0, "flip_mismatches": 0}  # fmt: skip
    for index, theirs in reference.items():
        mine = values[index]
        available = theirs["available"]
        figures["flip_mismatches"] += int(np.sum(available != mine["available"]))
        for name in ("comprehensiveness", "sufficiency"):
            difference = np.abs(mine[name] - theirs[name])[:, available]
            figures[name] = max(figures[name], float(np.max(difference, initial=0.0)))
        same = ((np.abs(mine["flip_fraction"] - theirs["flip_fraction"]) <= FLIP_ATOL)
                & (mine["flipped"] == theirs["flipped"])
                & (mine["top1_flip"] == theirs["top1_flip"]))  # fmt: skip
        figures["flips"] += int(np.sum(available))
        figures["flip_mismatches"] += int(np.sum(~same & available))
    return figures


def check_agreement(values: dict, reference: dict, what: str) -> dict:
    """``compare``'s figures; AssertionError if comprehensiveness or sufficiency differ by more
    than ``ATOL`` or any flip differs."""
    figures = compare(values, reference)
    assert figures["comprehensiveness"] <= ATOL and figures["sufficiency"] <= ATOL, (what, figures)
    assert figures["flip_mismatches"] == 0, (what, figures)
    return figures


# ------------------------------------------------------------------ the report


def ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 1 else f"{value:.1f}×"


def per_instance_ms(row: dict, key: str = "steady_s") -> float:
    return 1e3 * row[key] / row["instances"]


def speed_table(rows: dict) -> list[str]:
    ours = per_instance_ms(rows["ours"])
    lines = [
        "| side | instances (mean real tokens) | compile s | steady ms/instance | ERASER / flips "
        "ms/instance | forward passes/instance | forward passes/s | k positions/s | ours' "
        "speed-up (steady; < 1: ours slower) |", "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for side in SIDES:
        row = rows[side]
        ms = per_instance_ms(row)
        compile_s = f"{sum(row['compile_s'].values()):.1f}" if side == "ours" else "—"
        split = "—"
        if side != "batched":
            split = f"{per_instance_ms(row, 'eraser_s'):.1f} / {per_instance_ms(row, 'flip_s'):.1f}"
        lines.append(
            f"| {SIDE_NAMES[side]} | {row['instances']} ({row['mean_tokens']:.1f}) | {compile_s} "
            f"| {ms:.1f} | {split} | {row['forwards'] / row['instances']:,.0f} | "
            f"{row['forwards'] / row['steady_s']:,.0f} | "
            f"{row['positions'] / row['steady_s'] / 1e3:,.1f} | "
            f"{'—' if side == 'ours' else ratio(ms / ours)} |"
        )
    return lines


def compile_table(compile_seconds: dict) -> list[str]:
    widths = sorted({w for _, w in compile_seconds})
    programs = list(dict.fromkeys(p for p, _ in compile_seconds))
    lines = ["| program | " + " | ".join(f"T = {w}" for w in widths) + " | sum |",
             "|---|" + "---|" * (len(widths) + 1)]  # fmt: skip
    for program in programs:
        cells = [compile_seconds[(program, w)] for w in widths]
        lines.append(f"| {program} | " + " | ".join(f"{c:.1f}" for c in cells)
                     + f" | {sum(cells):.1f} |")  # fmt: skip
    return lines


def agreement_table(agreement: dict) -> list[str]:
    lines = ["| compared | instances | max abs Δ comprehensiveness | max abs Δ sufficiency | "
             "flip mismatches / flips | required |", "|---|---|---|---|---|---|"]  # fmt: skip
    for what, f in agreement.items():
        lines.append(
            f"| {what} | {f['instances']} | {f['comprehensiveness']:.1e} | "
            f"{f['sufficiency']:.1e} | {f['flip_mismatches']} / {f['flips']} | ≤ {ATOL:g}; "
            "0 |"
        )
    return lines


def render(rows: dict, agreement: dict, context: dict) -> str:
    settings = context["settings"]
    ours = rows["ours"]
    removals = " and ".join(PARTICIPLES[r] for r in settings.removals)
    percents = ", ".join(map(str, settings.percents))
    lines = [
        "# attn_audit's faithfulness metrics against an eager PyTorch peer", "",
        f"Machine: {context['machine']}. Load average (1/5/15 min): "
        + "; ".join(f"{load} {phase}" for phase, load in context["loads"])
        + ". Other jobs share these cores, so the timings are noisy.", "",
        f"Command: `{context['command']}` on `{context['workdir']}` "
        f"({context['model']}); {context['minutes']:.1f} minutes in all.", "",
        f"Scores judged: {context['source']}; explainers {', '.join(context['explainers'])} "
        f"(X = {len(context['explainers'])}). Metrics (SPEC §8): ERASER comprehensiveness and "
        f"sufficiency at k ∈ {{{percents}}}% with the tokens {removals} (R = "
        f"{len(settings.removals)} removals, K = {len(settings.percents)}), decision flips "
        f"with the tokens {PARTICIPLES[settings.flip_removal]}; f(x) = p(ŷ | x), ŷ predicted "
        "on the full input.", "",
        "## Agreement (checked before anything is timed on the PyTorch side)", "",
        *agreement_table(agreement), "",
        "Comprehensiveness and sufficiency: largest absolute difference over instances, "
        "explainers, removals and k. A flip matches when the fraction removed (to 1e-6), "
        "whether it flipped and whether the top token alone flipped it are equal.", "",
        f"## Speed (first {context['limit']} test instances, batches of "
        f"{context['batch_size']})", "",
        *speed_table(rows), "",
        "Ours' compile seconds per program and padded width (ahead of time, JAX's caches "
        "cleared first, no persistent cache; paid once per process and shape):", "",
        *compile_table(ours["compile_s"]), "",
        *notes(rows, context), "",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def notes(rows: dict, context: dict) -> list[str]:
    settings = context["settings"]
    ours, loop, batched = (rows[s] for s in SIDES)
    num_x = len(context["explainers"])
    eraser_needed = 2 * len(settings.removals) * len(settings.percents) * num_x
    return [
        "- **Steady ms/instance**: the best of repeated passes (at least one, until "
        f"{MIN_TIMING_SECONDS:g} s are spent) divided by the instances. Ours on all "
        f"{ours['instances']} instances, padding rows included in the cost; the PyTorch sides "
        f"on {loop['instances']} instances spread evenly over them (mean "
        f"{loop['mean_tokens']:.1f} real tokens against {ours['mean_tokens']:.1f}); "
        "per-instance times compared. Ours' ERASER / flips split is each program's run time "
        "(`BatchFaithfulness.seconds`); the total adds laying the scores out on positions.",
        f"- **Forward passes** actually evaluated. ERASER needs 1 + {eraser_needed} per "
        f"instance (ŷ, then 2 perturbations × {len(settings.removals)} removals × "
        f"{len(settings.percents)} k × {num_x} explainers). Ours runs 2 original passes per row "
        "of a padded batch (one per program), then over the whole batch, in steps that the "
        "last one fills with repeats, the ERASER coalitions and the flip prefixes j ≤ n of the "
        "instance rows (padding rows none), at the padded width (widths "
        f"{', '.join(map(str, ours['widths']))}): "
        f"{ours['forwards_by_program']['eraser'] / ours['instances']:,.0f} ERASER and "
        f"{ours['forwards_by_program']['flip'] / ours['instances']:,.0f} flip passes per "
        "instance. The PyTorch loop **stops at the first flip** — a legitimate advantage of "
        "the loop, which ours gives up to keep one shape per width — and runs each "
        "perturbation at its own length; the batched variant evaluates every prefix up to n "
        "(no early stop) in one padded forward pass per instance.",
        "- **k positions/s**: forward passes × the width they run at (the tensor's, padding "
        "included; the twin packs its LSTM input, so it skips padding that ours computes), "
        "per second.",
        "- JAX runs XLA's CPU programs on its own thread pool (every core); "
        f"PyTorch with {context['torch_threads']} intra-op thread(s), under "
        "`torch.no_grad()`, on the twin (`tests/reference/torch_model.py`) with the run's "
        "weights (`attn_audit.interop.to_torch_state_dict`). The twin's attention softmax "
        "over no real token is NaN; ours defines α = 0 there (context 0, the output bias), "
        "and the peer does the same for those rows.",
        f"- {context['padding']}",
        f"- Loop: {loop['forwards'] / loop['instances']:,.0f} forward passes per instance of "
        f"{1 + eraser_needed + num_x * loop['mean_tokens']:,.0f} without the early stop; "
        f"batched: {batched['forwards'] / batched['instances']:,.0f}.",
    ]  # fmt: skip


def padding(batches: list[dict]) -> str:
    rows = sum(b["token_ids"].shape[0] for b in batches)
    instances = sum(int(np.sum(b["index"] >= 0)) for b in batches)
    positions = sum(b["token_ids"].size for b in batches)
    filled_positions = sum(int(np.sum(b["lengths"])) for b in batches)
    return (
        f"Our batches hold {rows} rows for {instances} instances; tokens (SOS and EOS "
        f"included) fill {filled_positions / positions:.0%} of their positions."
    )


# ------------------------------------------------------------------ the benchmark


def run(options: Options) -> dict:
    """Measures, checks and writes the report; ``{"report", "rows", "agreement", "records",
    "explainers"}``."""
    start = time.perf_counter()
    loads = [("at start", load_average())]
    if options.torch_threads:
        torch.set_num_threads(options.torch_threads)
    trained = load_run(options.workdir)
    model = auditable_model(trained.model_config)
    twin = load_torch_model(to_torch_state_dict(trained.params, trained.model_config),
                            trained.model_config)  # fmt: skip
    dataset = data.load_dataset(trained.config["data"]["name"], options.data_dir)
    split = first_instances(data.encode_split(dataset, "test", trained.vocab), options.limit)
    widths = split_boundaries(split, options.num_buckets)
    batches = list(data.batches(split, options.batch_size, widths))
    default_path = pathlib.Path(options.workdir) / "explain" / "test" / "records.jsonl"
    path = pathlib.Path(options.explanations or default_path)
    if path.exists():
        records, names = explanation_scores(path, split, options.explainers)
        source = f"the run's explanations (`{path}`)"
    else:
        records, names = computed_scores(model, trained.params, batches, split)
        source = f"computed here ({path} does not exist)"
        if options.explainers:
            names = tuple(n for n in names if n in options.explainers)
    settings = FaithfulnessSettings()
    print(f"{len(split.labels)} instances, widths {widths}, explainers {names}", flush=True)

    ours = time_ours(model, trained.params, batches, records, names, settings)
    loads.append(("after ours", load_average()))
    print("ours:", {k: v for k, v in ours.items() if k != "values"}, flush=True)

    peer = TorchFaithfulness(twin, settings)
    agreement_indices = set(spread(options.agreement_instances, len(split.labels)))
    first = instance_items(batches, records, names, agreement_indices)
    loop_first, batched_first = peer.run(first, "loop"), peer.run(first, "batched")
    agreement = {
        "PyTorch loop vs ours (before timing)": check_agreement(ours["values"], loop_first,
                                                                "loop vs ours"),
        "PyTorch batched vs PyTorch loop (before timing)": check_agreement(
            batched_first, loop_first, "batched vs loop"),
    }  # fmt: skip
    print("agreement:", agreement, flush=True)

    items = instance_items(batches, records, names, set(spread(options.torch_limit,
                                                               len(split.labels))))  # fmt: skip
    rows = {"ours": ours, "loop": time_torch(peer, items, "loop")}
    rows["batched"] = time_torch(peer, items, "batched")
    loads.append(("after PyTorch", load_average()))
    for side in ("loop", "batched"):
        agreement[f"{SIDE_NAMES[side]} vs ours (every timed instance)"] = check_agreement(
            ours["values"], rows[side]["values"], f"timed {side} vs ours"
        )
    for side in SIDES:
        print(side, {k: v for k, v in rows[side].items() if k != "values"}, flush=True)
    context = {
        "machine": machine(), "loads": loads, "command": options.command,
        "workdir": options.workdir, "minutes": (time.perf_counter() - start) / 60,
        "model": f"{trained.config['data']['name']}, {trained.model_config.encoder} + "
        f"{trained.model_config.attention} attention",
        "source": source, "explainers": names, "settings": settings, "limit": len(split.labels),
        "batch_size": options.batch_size, "torch_threads": torch.get_num_threads(),
        "padding": padding(batches),
    }  # fmt: skip
    report = render(rows, agreement, context)
    pathlib.Path(options.out).mkdir(parents=True, exist_ok=True)
    write_results(pathlib.Path(options.out) / RESULTS_FILE, report)
    return {"report": report, "rows": rows, "agreement": agreement, "records": records,
            "explainers": names, "batches": batches}  # fmt: skip


# ------------------------------------------------------------------ the command

_FLAGS = {}


def define_flags() -> None:
    """The command's flags, defined only when it runs (tests import the module alongside other
    benchmarks that define flags of the same names)."""
    defaults = Options()
    _FLAGS.update(
        workdir=flags.DEFINE_string("workdir", defaults.workdir, "A trained run (make train)."),
        data_dir=flags.DEFINE_string("data_dir", None, "Data folder (default $ATTN_AUDIT_DATA)."),
        explanations=flags.DEFINE_string(
            "explanations", None, "Explanation records (default <workdir>/explain/test/"
            "records.jsonl; absent: attention, gradient and random computed here)."),
        limit=flags.DEFINE_integer("limit", defaults.limit, "Test instances for ours."),
        torch_limit=flags.DEFINE_integer(
            "torch_limit", defaults.torch_limit, "Instances, spread over --limit, for PyTorch."),
        agreement_instances=flags.DEFINE_integer(
            "agreement_instances", defaults.agreement_instances, "Instances checked first."),
        batch_size=flags.DEFINE_integer("batch_size", defaults.batch_size, "Rows per batch."),
        num_buckets=flags.DEFINE_integer(
            "num_buckets", defaults.num_buckets, "Padded widths (the runner's: 4)."),
        torch_threads=flags.DEFINE_integer(
            "torch_threads", defaults.torch_threads, "ATen intra-op threads (0: default)."),
        explainers=flags.DEFINE_list("explainers", None, "Explainers (default: the records')."),
        out=flags.DEFINE_string("out", defaults.out, f"Where {RESULTS_FILE} goes."),
    )  # fmt: skip


def main(argv):
    del argv
    given = [flags.FLAGS[name] for name in _FLAGS if flags.FLAGS[name].present]
    command = " ".join(["python -m benchmarks.faithfulness_vs_torch",
                        *(f.serialize() for f in given)])  # fmt: skip
    values = {name: holder.value for name, holder in _FLAGS.items()}
    if values["explainers"] is not None:
        values["explainers"] = tuple(values["explainers"])
    result = run(Options(**values, command=command))
    print(result["report"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
