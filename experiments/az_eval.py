r"""Abnar & Zuidema's evaluation of a trained transformer, and JW's audits of its CLS attention.

  python -m experiments.az_eval --workdir=runs/sst_transformer \
      [--split=test --limit=N --audit_limit=M --batch_size=32 --flow_workers=1 --seed=0 \
       --audits=gradient,loo,permutation,adversarial --name=NAME --results_dir=results \
       --data_dir=DIR]

For every instance of the split and every layer l: the CLS row's raw attention, rollout and
attention flow over the real tokens, correlated (Spearman ρ, NaN → 0) with blank-out and
with input-gradient importance for the correct class (AZ §2, Tables 1–2; SPEC §5;
``attn_audit/az.py``). Word-piece runs (MiniLM) blank out with ``[MASK]`` and correlate
per word (piece scores summed). Then JW's four audits on the last layer's CLS attention
through the engine (``run_audit`` with ``auditable_model``; SPEC §3).

Writes ``<results_dir>/az_<dataset>_<name>.csv`` (mean ± std of ρ per layer, relevance and
importance, with AZ's published means), ``<results_dir>/figures/az_<dataset>_<name>.png``,
the section ``az_<name>`` of ``<results_dir>/RESULTS.md``, and in the run folder
``az/<split>/`` the per-instance ρ (``rho.npz``), ``summary.json`` and the JW audit
(``audit/``, resumable). ``NAME`` defaults to the run folder's name without a leading
``<dataset>_``.

Expected on this 2-core CPU (shared with other jobs): for the 6-layer, width-128 SST
transformer, about 4 min for the 1,725 test instances with a warm compilation cache
(AZ's part 1.5 min, of which the exact CLS flow 10 s; JW's audits 2.5 min). The result
(results/RESULTS.md): every ρ with blank-out is low (≤ 0.12), flow and rollout only a few
hundredths above raw attention in the upper layers; with input gradients ρ ≈ 0.6 at
every layer, rollout highest and flow lowest from layer 3 up.
"""

import concurrent.futures
import functools
import json
import multiprocessing
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from attn_audit import data, models
from attn_audit.audits import AUDITS, AuditOptions, auditable_model, run_audit
from attn_audit.audits.runner import first_instances
from attn_audit.evaluations import az
from attn_audit.report import format_tau_cell, summarize
from attn_audit.report.tables import replace_section, write_csv
from attn_audit.training.checkpoint import CheckpointError
from attn_audit.training.run_folder import load_run
from experiments._setup import setup

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained transformer (required).")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "Split to evaluate.")
_LIMIT = flags.DEFINE_integer("limit", None, "Evaluate only the first N instances of the split.")
_AUDIT_LIMIT = flags.DEFINE_integer(
    "audit_limit", None, "JW's audits on only the first N instances (default: --limit)."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Instances per batch.")
_WORKERS = flags.DEFINE_integer(
    "flow_workers", 1, "Processes for the attention flow (1: this one)."
)
_AUDITS = flags.DEFINE_list(
    "audits", list(AUDITS), f"JW audits to run, from {list(AUDITS)}; empty for none."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the JW audits' permutations and adversary.")
_NAME = flags.DEFINE_string("name", None, "Name in the results files (default: from --workdir).")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "results", "Where tables and figures go.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


# ---------------------------------------------------------------- the jitted sweeps


@functools.partial(jax.jit, static_argnames=("config", "blank_id"))
def scores_batch(params, config, token_ids, lengths, labels, blank_id):
    """Per instance: attention maps, raw/rollout relevance, blank-out and gradient importance.

    Returns:
      ``{"attention_maps": [B, L, H, T, T], "raw": [B, L, T], "rollout": [B, L, T],
      "blank_out": [B, T], "gradient": [B, T], "probabilities": [B, C]}``.
    """

    def one(token_ids, length, label):
        logits, aux = models.forward(params, config, token_ids, length)
        scores = az.layer_relevance(aux["attention_maps"], length)
        scores["attention_maps"] = aux["attention_maps"]
        scores["probabilities"] = models.probabilities(logits, config)
        scores["blank_out"] = az.blank_out_importance(
            params, config, token_ids, length, label, blank_id
        )
        scores["gradient"] = az.input_gradient_importance(params, config, token_ids, length, label)
        return scores

    return jax.vmap(one)(token_ids, lengths, labels)


@jax.jit
def correlations_batch(relevances, importances, mask, word_index):
    """``az.correlations`` vmapped over instances: ``{relevance: {importance: [B, L]}}``."""
    return jax.vmap(az.correlations)(relevances, importances, mask, word_index)


@jax.jit
def token_correlations_batch(relevances, importances, mask):
    return jax.vmap(az.correlations)(relevances, importances, mask)


# ---------------------------------------------------------------- inputs


def encode(run, dataset, split_name: str):
    """``(split, blank_id, word_indices)``: word indices only for word-piece runs."""
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
    """``[B, T]`` word of each piece (−1 off the words and on padding rows)."""
    padded = np.full((len(rows), num_positions), -1, np.int32)
    for b, index in enumerate(rows):
        if index >= 0:
            padded[b, : len(word_indices[index])] = word_indices[index]
    return padded


# ---------------------------------------------------------------- AZ's evaluation


def evaluate(run, split, boundaries, blank_id, word_indices, batch_size, executor=None):
    """Per-instance ρ ``{relevance: {importance: [N, L]}}`` in data order, and timings."""
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
        flow[rows] = flow.attention_flow_batch(
            scores["attention_maps"][rows], lengths[rows], row=0, executor=executor
        )
        flow = np.where(az.real_token_mask(lengths, flow.shape[-1])[:, None, :], flow, 0.0)
        timings["flow_seconds"] += time.perf_counter() - start

        start = time.perf_counter()
        relevances = {"raw": scores["raw"], "rollout": scores["rollout"],
                      "flow": flow.astype(np.float32)}  # fmt: skip
        importances = {name: scores[name] for name in az.IMPORTANCES}
        mask = az.real_token_mask(lengths, flow.shape[-1])
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


def table_rows(rho, dataset_name: str, name: str) -> list[dict]:
    """One CSV row per (relevance, importance, layer): mean, std (ddof 0), n, AZ's mean."""
    rows = []
    for importance in az.IMPORTANCES:
        for kind in az.RELEVANCES:
            values = rho[kind][importance]
            published = az.AZ_PUBLISHED[(kind, importance)]
            for layer in range(values.shape[1]):
                rows.append({
                    "dataset": dataset_name, "run": name, "importance": importance,
                    "relevance": kind, "layer": layer + 1,
                    "mean": round(float(values[:, layer].mean()), 4),
                    "std": round(float(values[:, layer].std()), 4), "n": values.shape[0],
                    "az_mean": published[layer] if layer < len(published) else "",
                })  # fmt: skip
    return rows


# ---------------------------------------------------------------- reporting


IMPORTANCE_TITLES = {"blank_out": "blank-out", "gradient": "input gradients"}


def trend(rho) -> tuple[dict[str, bool], str]:
    """Per importance, whether rollout and flow both beat raw attention in the upper layers.

    The upper layers are those above the middle (layers ⌊L/2⌋+1 … L); the sentence gives
    their mean ρ.

    Returns:
      ``({importance: holds}, sentence)``.
    """
    num_layers = rho["raw"]["blank_out"].shape[1]
    upper = slice(num_layers // 2, num_layers)
    holds, parts = {}, []
    for importance in az.IMPORTANCES:
        means = {k: float(rho[k][importance][:, upper].mean()) for k in az.RELEVANCES}
        holds[importance] = means["rollout"] > means["raw"] and means["flow"] > means["raw"]
        parts.append(
            f"with {IMPORTANCE_TITLES[importance]} it "
            f"{'holds' if holds[importance] else 'does not hold'} (raw {means['raw']:.2f}, "
            f"rollout {means['rollout']:.2f}, flow {means['flow']:.2f})"
        )
    first = upper.start + 1
    layers = f"layers {first}–{num_layers}" if num_layers > first else f"layer {num_layers}"
    return holds, f"mean ρ over {layers}: {'; '.join(parts)}"


def _layer_table(rho, importance: str, num_columns: int) -> list[str]:
    header = "| relevance | " + " | ".join(f"L{layer + 1}" for layer in range(num_columns)) + " |"
    lines = [header, "|---" * (num_columns + 1) + "|"]
    for kind in az.RELEVANCES:
        values = rho[kind][importance]
        cells = [
            f"{values[:, layer].mean():.2f} ± {values[:, layer].std():.2f}"
            if layer < values.shape[1] else ""
            for layer in range(num_columns)
        ]  # fmt: skip
        lines.append(f"| {kind} (ours) | " + " | ".join(cells) + " |")
    for kind in az.RELEVANCES:
        published = az.AZ_PUBLISHED[(kind, importance)]
        cells = [f"{published[layer]:.2f}" if layer < len(published) else ""
                 for layer in range(num_columns)]  # fmt: skip
        lines.append(f"| {kind} (AZ) | " + " | ".join(cells) + " |")
    return lines


def jw_row(summary: dict) -> list[str]:
    """JW's audit summary of all instances, one table row."""
    table = summary.get("table2", {}).get("all", {})
    cells = [str(summary["n_instances"])]
    cells += [
        format_tau_cell(table.get(m)) for m in ("tau_gradient", "tau_loo", "tau_gradient_loo")
    ]
    permutation = summary.get("permutation", {})
    cells.append(_fmt(permutation.get("median")))
    adversarial = summary.get("adversarial", {})
    cells.append(_fmt(adversarial.get("max_jsd_quantiles", {}).get("0.5")))
    cells.append(_fmt(adversarial.get("share_jsd_ge_0_6")))
    return [
        "| n | τ_g (α vs gradient) | τ_loo (α vs LOO) | τ_g,loo | median permutation TVD "
        "| median adversarial max JSD | share max JSD ≥ 0.6 |",
        "|---|---|---|---|---|---|---|",
        "| " + " | ".join(cells) + " |",
    ]


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def section_markdown(run, dataset_name, name, rho, holds, trend_text, jw_summary, info) -> str:
    config = run.model_config
    num_layers = config.num_layers
    accuracy = (run.metrics.get("test") or {}).get("accuracy")
    command = f"python -m experiments.az_eval --workdir={info['workdir']}"
    if info["limit"] is not None:
        command += f" --limit={info['limit']}"
    if info["audit_limit"] is not None:
        command += f" --audit_limit={info['audit_limit']}"
    if info["name"] != default_name(pathlib.Path(info["workdir"]), dataset_name):
        command += f" --name={info['name']}"
    lines = [
        f"## Abnar & Zuidema's evaluation: {dataset_name}, {name}",
        "",
        f"Command: `{command}`. Model: {num_layers}-layer transformer, {config.num_heads} "
        f"heads, width {config.hidden_size}, {config.pooling} pooling"
        + (f", test accuracy {accuracy:.3f}" if accuracy is not None else "")
        + f". Training: {info['training']}."
        + f" {info['split'].capitalize()} split: {info['n']} of {info['split_size']} instances"
        + (f" (the first {info['limit']}, `--limit`)" if info["limit"] is not None else "")
        + f". Wall time: AZ's evaluation {info['az_seconds']:.0f} s (of which flow "
        f"{info['flow_seconds']:.0f} s), JW's audits {info['jw_seconds']:.0f} s, the whole "
        f"command {info['process_seconds']:.0f} s on this machine.",
        "",
        "Relevance: the CLS (first) row of raw attention (head average), rollout and exact "
        "attention flow at each layer, on the real tokens only; importance of each real token "
        "for the correct class: blank-out (drop of its probability when the token becomes "
        f"{info['blank']}) and input gradients |Σ_d ∂p/∂e_t,d|. Spearman ρ per instance "
        "(NaN → 0), mean ± std over instances"
        + (" (word pieces summed per word first)" if info["word_pieces"] else "")
        + " (attn_audit/az.py).",
        "",
        'AZ\'s numbers (rows "AZ") come from a different model and task: a 6-layer, 8-head, '
        "width-128 GPT-2-block encoder with a CLS token on subject–verb agreement (Linzen et "
        "al.), 2,000 test instances (AZ Tables 1–2); they are beside ours for the trend, not "
        "for the values.",
        "",
        f"### Spearman ρ with blank-out ({info['n']} instances)",
        "",
        *_layer_table(rho, "blank_out", max(num_layers, 6)),
        "",
        f"### Spearman ρ with input gradients ({info['n']} instances)",
        "",
        *_layer_table(rho, "gradient", max(num_layers, 6)),
        "",
        f"![AZ per layer](figures/{info['figure']})",
        "",
        f"**AZ's trend** (rollout and flow agree better than raw attention with the importance "
        f"scores in the upper layers), {trend_text}. At layer 1 raw, rollout and flow rank "
        "the real tokens identically by construction (the residual adds only to the CLS "
        "position), so their layer-1 ρ are equal; AZ's layer-1 gap (raw 0.69 vs 0.32) cannot "
        "come from the CLS row restricted to the other tokens (their public SST script, "
        "`corel_bert_sst.py`, scores a token by its maximum over all query rows, "
        "`A[layer].max(axis=0)`, where the residual's diagonal weighs in).",
        "",
    ]
    if jw_summary is not None:
        lines += [
            f"### JW's audits of the last layer's CLS attention ({jw_summary['n_instances']} "
            "instances" + (", `--audit_limit`" if info["audit_limit"] is not None else "") + ")",
            "",
            "α is the last layer's CLS row averaged over heads, over the real tokens "
            "(`TransformerModel`); τ is mean ± std (share with p ≤ 0.05), SPEC §3.",
            "",
            *jw_row(jw_summary),
            "",
        ]
    return "\n".join(lines)


def write_figure(rho, path: pathlib.Path, title: str) -> pathlib.Path:
    """Mean ρ per layer, ours (solid, ± std band) and AZ's (dashed), one panel per importance."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.5), dpi=100)
    colours = {"raw": "tab:gray", "rollout": "tab:blue", "flow": "tab:orange"}
    for number, importance in enumerate(az.IMPORTANCES):
        axes = figure.add_subplot(1, 2, number + 1)
        for kind in az.RELEVANCES:
            values = rho[kind][importance]
            layers = np.arange(1, values.shape[1] + 1)
            mean, std = values.mean(0), values.std(0)
            axes.plot(layers, mean, "o-", color=colours[kind], label=f"{kind} (ours)")
            axes.fill_between(layers, mean - std, mean + std, color=colours[kind], alpha=0.12)
            published = az.AZ_PUBLISHED[(kind, importance)]
            axes.plot(range(1, len(published) + 1), published, "--", color=colours[kind],
                      alpha=0.6, label=f"{kind} (AZ, SV agreement)")  # fmt: skip
        axes.set_xlabel("layer")
        axes.set_ylabel(f"Spearman ρ with {IMPORTANCE_TITLES[importance]}")
        axes.set_ylim(-0.4, 1.0)
        axes.axhline(0, color="black", linewidth=0.5)
        if number == 0:
            axes.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    return path


def training_text(run) -> str:
    """The run's training settings in a few words, from its ``config.json``."""
    settings = run.config.get("train", {})
    words = [f"{settings.get('encoder', run.model_config.encoder)}"]
    if settings.get("encoder") == "minilm":
        words.append("fine-tuned" if settings.get("finetune_encoder") else "frozen encoder")
    else:
        words.append(f"{settings.get('embeddings')} embeddings")
    words.append(f"{settings.get('epochs')} epochs, lr {settings.get('learning_rate'):g}")
    words.append(f"epoch {run.best_epoch} selected on dev")
    return ", ".join(words)


def default_name(workdir: pathlib.Path, dataset_name: str) -> str:
    name = workdir.name
    prefix = f"{dataset_name}_"
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else name


def main(argv):
    del argv
    setup()
    process_start = time.perf_counter()
    try:
        unknown = sorted(set(_AUDITS.value) - set(AUDITS))
        if unknown:
            raise ValueError(f"Unknown audits {unknown} in --audits; choose from {list(AUDITS)}.")
        if _WORKERS.value < 1:
            raise ValueError(f"--flow_workers must be at least 1, got {_WORKERS.value}.")
        if not _WORKDIR.value:
            raise ValueError("--workdir is required: a trained transformer's run folder.")
        run = load_run(_WORKDIR.value)
        if not run.model_config.is_transformer:
            raise ValueError(
                f"{run.workdir} holds a {run.model_config.encoder} model; AZ's evaluation needs "
                "a transformer's attention maps (train with --encoder=transformer or minilm)."
            )
        dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
        full_split, blank_id, word_indices = encode(run, dataset, _SPLIT.value)
        split = first_instances(full_split, _LIMIT.value)
        boundaries = tuple(run.config["data"]["bucket_boundaries"])
        out_dir = run.workdir / "az" / _SPLIT.value
        out_dir.mkdir(parents=True, exist_ok=True)

        start = time.perf_counter()
        if _WORKERS.value > 1:
            context = multiprocessing.get_context("spawn")  # forking a JAX process can deadlock
            with concurrent.futures.ProcessPoolExecutor(_WORKERS.value, mp_context=context) as ex:
                rho, timings = evaluate(run, split, boundaries, blank_id, word_indices,
                                        _BATCH_SIZE.value, ex)  # fmt: skip
        else:
            rho, timings = evaluate(
                run, split, boundaries, blank_id, word_indices, _BATCH_SIZE.value
            )
        az_seconds = time.perf_counter() - start

        jw_summary, jw_seconds = None, 0.0
        if _AUDITS.value:
            start = time.perf_counter()
            options = AuditOptions(
                split=_SPLIT.value, audits=tuple(a for a in AUDITS if a in _AUDITS.value),
                seed=_SEED.value, batch_size=_BATCH_SIZE.value,
                limit=_LIMIT.value if _AUDIT_LIMIT.value is None else _AUDIT_LIMIT.value,
            )  # fmt: skip
            records, _ = run_audit(
                auditable_model(run.model_config), run.params, full_split, boundaries,
                out_dir / "audit", options,
            )  # fmt: skip
            jw_summary = summarize(records, run.config["data"]["label_names"])
            jw_seconds = time.perf_counter() - start
    except (data.DataError, CheckpointError, ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")

    dataset_name = dataset.name
    name = _NAME.value or default_name(run.workdir, dataset_name)
    results = pathlib.Path(_RESULTS_DIR.value)
    (results / "figures").mkdir(parents=True, exist_ok=True)
    stem = f"az_{dataset_name}_{name}"
    np.savez(out_dir / "rho.npz", **{f"{r}_{i}": rho[r][i] for r in rho for i in rho[r]})
    csv_path = write_csv(results / f"{stem}.csv", table_rows(rho, dataset_name, name))
    write_figure(rho, results / "figures" / f"{stem}.png",
                 f"{dataset_name} {name}: CLS relevance vs importance")  # fmt: skip
    holds, trend_text = trend(rho)
    info = {
        "workdir": _WORKDIR.value, "limit": _LIMIT.value, "audit_limit": _AUDIT_LIMIT.value,
        "split": _SPLIT.value, "name": name, "training": training_text(run),
        "n": len(split.labels), "split_size": len(full_split.labels),
        "az_seconds": az_seconds, "flow_seconds": timings["flow_seconds"],
        "jw_seconds": jw_seconds, "process_seconds": time.perf_counter() - process_start,
        "blank": "[MASK]" if word_indices is not None else "UNK",
        "word_pieces": word_indices is not None, "figure": f"{stem}.png",
    }  # fmt: skip
    markdown = section_markdown(run, dataset_name, name, rho, holds, trend_text, jw_summary, info)
    replace_section(results / "RESULTS.md", f"az_{name}", markdown)
    summary = {
        "info": info, "timings": timings, "trend_holds": holds, "trend": trend_text,
        "rows": table_rows(rho, dataset_name, name), "jw": jw_summary,
    }  # fmt: skip
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    logging.info("Wrote %s, the az_%s section of %s and %s.", csv_path, name,
                 results / "RESULTS.md", out_dir)  # fmt: skip
    print(markdown)


if __name__ == "__main__":
    app.run(main)
