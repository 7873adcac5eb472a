"""PNG figures of a faithfulness summary (``attn_audit.report.faithfulness_summary``; SPEC §8).

- ``aopc_curves``: ERASER's comprehensiveness and sufficiency against k (the % of tokens in
  the rationale), one panel per measure × removal, one line per explainer in ranking order
  with its 95% bootstrap CI shaded; attention explainers drawn thicker, the random explainer
  (the floor) dashed grey. Comprehensiveness: higher is more faithful; sufficiency: lower.
- ``agreement_heatmap``: how much the explainers agree, per instance and then averaged:
  Kendall τ-b of their whole rankings (−1..1) and the Jaccard index of their top-20% tokens
  (0..1), as symmetric matrices in ranking order, each cell annotated with the mean.
- ``randomisation_cascade``: Adebayo et al.'s sanity check, Spearman ρ between an
  explainer's scores on the trained model and on models with re-initialised blocks (mean and
  95% CI). Left: the cascade from the decoder down to the embeddings; right: each block alone.
  An explainer that reads the model falls towards 0; one that stays near 1 ignores it.

Built on ``matplotlib.figure.Figure`` directly (no pyplot, no global backend state) and saved
at ``figures.DPI``. Each function writes one PNG and returns its path; none raises on parts of
the summary that are absent (ERASER, agreement or randomisation not run) or undefined (``None``
means), it says so in the figure instead. Pure numpy and matplotlib.
"""

import os
import pathlib
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from attn_audit.report.figures import save_png

FIGURE_NAMES = {
    "aopc_curves": "aopc_curves.png",
    "agreement_heatmap": "agreement_heatmap.png",
    "randomisation_cascade": "randomisation_cascade.png",
}
RANDOM_EXPLAINER = "random"
BLOCKS = ("decoder", "attention", "encoder", "embeddings")
_MEASURES = {
    "comprehensiveness": (
        "comprehensiveness_curve",
        "higher is more faithful",
        "p(ŷ|x) − p(ŷ|x∖r_k)",
    ),
    "sufficiency": ("sufficiency_curve", "lower is more faithful", "p(ŷ|x) − p(ŷ|r_k)"),
}
_AGREEMENT = {
    "tau": ("Kendall τ-b of the rankings", "RdBu_r", -1.0, 1.0),
    "jaccard": ("Jaccard index of the top-20% tokens", "viridis", 0.0, 1.0),
}


# ------------------------------------------------------------------------------- AOPC curves


def aopc_curves_figure(summary: Mapping) -> Figure:
    """The figure ``aopc_curves`` saves: a 2 × R grid (measure × removal)."""
    percents = list(summary.get("percents") or [])
    removals = list(summary.get("removals") or [])
    names = _explainer_order(summary)
    has_curves = any(
        isinstance(_get(summary, "explainers", name, key), Mapping)
        for name in names
        for key, _, _ in _MEASURES.values()
    )
    if not (percents and removals and has_curves):
        return _not_run_figure("ERASER comprehensiveness and sufficiency: not run")
    style = _styles(names)
    fig = Figure(figsize=(1.0 + 4.2 * len(removals), 6.4), layout="constrained")
    axes = fig.subplots(2, len(removals), squeeze=False, sharex=True, sharey="row")
    x = np.arange(len(percents))
    for row, (measure, (key, direction, ylabel)) in enumerate(_MEASURES.items()):
        for column, removal in enumerate(removals):
            ax = axes[row, column]
            undefined = []
            for name in names:
                points = _get(summary, "explainers", name, key, removal)
                if not isinstance(points, Sequence):
                    continue
                mean, low, high = _curve(points, len(percents))
                if not np.isfinite(mean).any():
                    undefined.append(name)
                color, linewidth, linestyle = style[name]
                ax.plot(
                    x,
                    mean,
                    color=color,
                    linewidth=linewidth,
                    linestyle=linestyle,
                    marker="o",
                    markersize=3,
                    label=name,
                    zorder=3 if name.startswith("attention") else 2,
                )
                band = np.isfinite(low) & np.isfinite(high)
                if band.any():
                    ax.fill_between(
                        x, low, high, where=band, color=color, alpha=0.12, linewidth=0, zorder=1
                    )
            title = f"{measure} · {removal}\n({direction})"
            if undefined:
                title += f"\nundefined: {', '.join(undefined)}"
            ax.set_title(title, fontsize=10)
            ax.set_xticks(x, [f"{p}%" for p in percents])
            ax.set_xlim(-0.3, len(percents) - 0.7)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("k: share of tokens in the rationale r_k")
            if column == 0:
                ax.set_ylabel(f"mean {ylabel}", fontsize=9)
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="outside right upper", title="best first")
    fig.suptitle(
        f"ERASER faithfulness, {_instances(summary)} (shaded: 95% bootstrap CI)", fontsize=11
    )
    return fig


def aopc_curves(summary: Mapping, path: str | os.PathLike) -> pathlib.Path:
    """ERASER's comprehensiveness and sufficiency curves per removal, one line per explainer."""
    return save_png(aopc_curves_figure(summary), path)


# ------------------------------------------------------------------------- agreement heatmap


def agreement_heatmap_figure(summary: Mapping) -> Figure:
    """The figure ``agreement_heatmap`` saves: τ-b and top-20% Jaccard matrices side by side."""
    agreement = summary.get("agreement") or {}
    names = _explainer_order(summary)
    for measure in _AGREEMENT:
        for pair in agreement.get(measure) or {}:
            for name in pair.split("|"):
                if name not in names:
                    names.append(name)
    if not any(agreement.get(measure) for measure in _AGREEMENT) or len(names) < 2:
        return _not_run_figure("Agreement between explainers: not run")
    side = 1.2 + 0.55 * len(names)
    fig = Figure(figsize=(2 * side + 1.5, side + 0.6), layout="constrained")
    axes = fig.subplots(1, len(_AGREEMENT), squeeze=False)[0]
    fontsize = 8 if len(names) <= 8 else 6
    for ax, (measure, (title, cmap_name, vmin, vmax)) in zip(axes, _AGREEMENT.items(), strict=True):
        pairs = agreement.get(measure) or {}
        matrix = _pair_matrix(pairs, names)
        cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="0.9")
        image = ax.imshow(
            np.ma.masked_invalid(matrix), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        for i in range(len(names)):
            for j in range(len(names)):
                value = matrix[i, j]
                if np.isfinite(value):
                    r, g, b, _ = cmap((value - vmin) / (vmax - vmin))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                    text, color = f"{value:.2f}", "white" if dark else "black"
                else:
                    text, color = "–", "0.4"
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title(title if pairs else f"{title}: not run", fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(f"Agreement between explainers, mean over {_instances(summary)}", fontsize=11)
    return fig


def agreement_heatmap(summary: Mapping, path: str | os.PathLike) -> pathlib.Path:
    """Mean Kendall τ-b and top-20% Jaccard of every pair of explainers, as two heat-maps."""
    return save_png(agreement_heatmap_figure(summary), path)


# --------------------------------------------------------------------- randomisation cascade


def randomisation_cascade_figure(summary: Mapping) -> Figure:
    """The figure ``randomisation_cascade`` saves: the cascade and the independent blocks."""
    randomisation = summary.get("randomisation") or {}
    names = _explainer_order(summary)
    for results in randomisation.values():
        for name in results or {}:
            if name not in names:
                names.append(name)
    if not randomisation or not names:
        return _not_run_figure("Parameter randomisation: not run")
    style = _styles(names)
    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    panels = [
        ("cascade", ["decoder"] + [f"+{b}" for b in BLOCKS[1:]], "cascading: from the output down"),
        ("independent", list(BLOCKS), "independent: one block at a time"),
    ]
    width = 0.6 / max(len(names), 1)
    lowest = 0.0
    for ax, (kind, ticks, title) in zip(axes, panels, strict=True):
        variants = [randomisation.get(f"{kind}/{block}") or {} for block in BLOCKS]
        ax.axhline(0.0, color="0.3", linewidth=0.8, zorder=0)
        for number, name in enumerate(names):
            mean, low, high = _curve([variant.get(name) for variant in variants], len(BLOCKS))
            if not np.isfinite(mean).any():
                continue
            color, linewidth, linestyle = style[name]
            x = np.arange(len(BLOCKS)) + (number - (len(names) - 1) / 2) * width
            yerr = np.stack([np.clip(mean - low, 0.0, None), np.clip(high - mean, 0.0, None)])
            ax.errorbar(
                x,
                mean,
                yerr=np.where(np.isfinite(yerr), yerr, 0.0),
                color=color,
                linewidth=linewidth if kind == "cascade" else 0.0,
                linestyle=linestyle,
                marker="o",
                markersize=4,
                capsize=2,
                elinewidth=1.0,
                label=name,
            )
            finite = np.concatenate([mean, low])
            finite = finite[np.isfinite(finite)]
            lowest = min(lowest, float(finite.min()))
        present = any(variants)
        ax.set_title(title if present else f"{title}: not run", fontsize=10)
        ax.set_xticks(range(len(BLOCKS)), ticks)
        ax.set_xlim(-0.5, len(BLOCKS) - 0.5)
        ax.set_xlabel("randomised blocks")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(min(-0.25, lowest - 0.05), 1.08)
    axes[0].set_ylabel("mean Spearman ρ(trained, randomised)")
    handles, labels = axes[0].get_legend_handles_labels()
    for handle, label in zip(*axes[1].get_legend_handles_labels(), strict=True):
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="outside right upper", title="best first")
    count = summary.get("randomisation_instances")
    over = f"{count} instances" if count is not None else "the instances"
    fig.suptitle(
        f"Parameter randomisation over {over} (bars: 95% bootstrap CI)\n"
        "near 0: the explanation depends on the randomised parameters; near 1: it ignores them",
        fontsize=11,
    )
    return fig


def randomisation_cascade(summary: Mapping, path: str | os.PathLike) -> pathlib.Path:
    """Spearman ρ of explanations on trained vs randomised models, cascade and independent."""
    return save_png(randomisation_cascade_figure(summary), path)


def write_faithfulness_figures(summary: Mapping, out_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Writes the three figures into ``out_dir / "figures"``; returns their paths."""
    folder = pathlib.Path(out_dir) / "figures"
    return [
        aopc_curves(summary, folder / FIGURE_NAMES["aopc_curves"]),
        agreement_heatmap(summary, folder / FIGURE_NAMES["agreement_heatmap"]),
        randomisation_cascade(summary, folder / FIGURE_NAMES["randomisation_cascade"]),
    ]


# ---------------------------------------------------------------------------------------------


def _get(tree, *keys):
    """``tree[k0][k1]...``, or None where a level is absent or not a mapping."""
    for key in keys:
        if not isinstance(tree, Mapping):
            return None
        tree = tree.get(key)
    return tree


def _explainer_order(summary: Mapping) -> list[str]:
    """The ranking (best first), then explainers the ranking leaves out, as listed."""
    names = [str(name) for name in summary.get("ranking") or []]
    for name in summary.get("explainers") or {}:
        if name not in names:
            names.append(str(name))
    return names


def _styles(names: Sequence[str]) -> dict[str, tuple]:
    """Colour, line width and line style per explainer: attention thick, random dashed grey."""
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    styles, number = {}, 0
    for name in names:
        if name == RANDOM_EXPLAINER:
            styles[name] = ("0.5", 1.4, "--")
            continue
        color = palette(number % palette.N)
        number += 1
        styles[name] = (color, 2.8 if name.startswith("attention") else 1.3, "-")
    return styles


def _curve(points, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, low and high ``[length]`` of a list of CI dicts; NaN where absent or None."""
    values = np.full((3, length), np.nan)
    for number, point in enumerate(list(points)[:length]):
        if isinstance(point, Mapping):
            for row, key in enumerate(("mean", "low", "high")):
                value = point.get(key)
                if value is not None:
                    values[row, number] = float(value)
    return values[0], values[1], values[2]


def _pair_matrix(pairs: Mapping, names: Sequence[str]) -> np.ndarray:
    """Symmetric ``[X, X]`` of the pairs' means (``"a|b"`` keys), 1 on the diagonal, NaN absent."""
    position = {name: number for number, name in enumerate(names)}
    matrix = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(matrix, 1.0)
    for pair, ci in pairs.items():
        a, _, b = pair.partition("|")
        mean = ci.get("mean") if isinstance(ci, Mapping) else None
        if a in position and b in position and mean is not None:
            matrix[position[a], position[b]] = matrix[position[b], position[a]] = float(mean)
    return matrix


def _instances(summary: Mapping) -> str:
    count = summary.get("instances")
    return f"{count} instances" if count is not None else "the instances"


def _not_run_figure(message: str) -> Figure:
    fig = Figure(figsize=(6.0, 2.0), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11)
    return fig
