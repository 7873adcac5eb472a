"""Abnar & Zuidema's evaluation, reported: CSV rows, AZ's trend, a RESULTS.md section, a figure.

Every function takes the per-instance ρ of ``az_sweep.evaluate``,
``{relevance: {importance: [N, L]}}`` (N instances, L layers), beside AZ's published means
(``az.AZ_PUBLISHED``; AZ Tables 1–2, SPEC §5). ``experiments/az_eval.py`` writes the files.
"""

import pathlib

import numpy as np

from attn_audit.evaluations import az
from attn_audit.report import format_tau_cell

IMPORTANCE_TITLES = {"blank_out": "blank-out", "gradient": "input gradients"}


def table_rows(rho, dataset_name: str, name: str) -> list[dict]:
    """One CSV row per (relevance, importance, layer): mean, std (ddof 0), n, AZ's mean.

    Args:
      rho: ``{relevance: {importance: [N, L]}}``.
      dataset_name: the dataset column, e.g. ``"sst"``.
      name: the run column.

    Returns:
      ``2 · 3 · L`` rows, importance-major, then relevance, then layer (1-based); ``az_mean``
      is ``""`` past AZ's six layers.
    """
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


def trend(rho) -> tuple[dict[str, bool], str]:
    """Per importance, whether rollout and flow both beat raw attention in the upper layers.

    The upper layers are those above the middle (layers ⌊L/2⌋+1 … L); the sentence gives
    their mean ρ.

    Args:
      rho: ``{relevance: {importance: [N, L]}}``.

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
    """JW's audit summary of all instances, one Markdown table (header, rule, one row).

    Args:
      summary: ``report.summarize``'s dict (``n_instances``, ``table2``, ``permutation``,
        ``adversarial``); missing audits show as ``—``.

    Returns:
      three Markdown lines.
    """
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
    """The ``az_<name>`` section of RESULTS.md: command, setup, ρ tables, trend, JW's audits.

    Args:
      run: the loaded run folder (``model_config``, ``metrics``).
      dataset_name: e.g. ``"sst"``.
      name: the run's name in the results.
      rho: ``{relevance: {importance: [N, L]}}``.
      holds, trend_text: ``trend(rho)``.
      jw_summary: ``report.summarize``'s dict of JW's audits, or None for none.
      info: the command's settings and wall times (keys ``workdir``, ``limit``,
        ``audit_limit``, ``name``, ``training``, ``split``, ``n``, ``split_size``,
        ``az_seconds``, ``flow_seconds``, ``jw_seconds``, ``process_seconds``, ``blank``,
        ``word_pieces``, ``figure``).

    Returns:
      the section's Markdown, without the section markers.
    """
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
    """Mean ρ per layer, ours (solid, ± std band) and AZ's (dashed), one panel per importance.

    Args:
      rho: ``{relevance: {importance: [N, L]}}``.
      path: the PNG to write (its folder must exist).
      title: the figure's title.

    Returns:
      ``path``.
    """
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
    """The run's training settings in a few words, from its ``config.json``.

    Args:
      run: the loaded run folder (``config``, ``model_config``, ``best_epoch``).

    Returns:
      e.g. ``"transformer, random embeddings, 3 epochs, lr 0.001, epoch 2 selected on dev"``.
    """
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
    """A run's name in the results: its folder's name without a leading ``<dataset>_``.

    Args:
      workdir: the run folder, e.g. ``runs/sst_transformer``.
      dataset_name: e.g. ``"sst"``.

    Returns:
      e.g. ``"transformer"``; the folder's whole name when nothing would be left.
    """
    name = workdir.name
    prefix = f"{dataset_name}_"
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else name
