"""PNG figures of audit records in the style of JW Figs. 1, 2, 3, 5 and 6.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no global backend
state) and saved at 100 dpi. Each function takes records (fields:
``attn_audit.report.records``), writes one PNG and returns its path; none raises on empty
groups or on audits that were not run, it says so in the figure instead.
"""

import math
import os
import pathlib
import warnings
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from attn_audit.report import fields
from attn_audit.report.fields import MAX_ATTENTION_BINS

DPI = 100
FIGURE_NAMES = {
    "tau_histograms": "tau_histograms.png",
    "permutation_violin": "permutation_violin.png",
    "adversarial_histogram": "adversarial_histogram.png",
    "adversarial_violin": "adversarial_violin.png",
    "attention_heatmaps": "attention_heatmaps.png",
}
LN2 = math.log(2.0)
MAX_HEATMAP_TOKENS = 30
MIN_HEATMAP_COLUMNS = 12
_TAU_TITLES = {"tau_gradient": "τ_g: attention vs gradient", "tau_loo": "τ_loo: attention vs LOO"}


def tau_histograms(
    records: Sequence[dict], label_names: Sequence[str] | None, path: str | os.PathLike
) -> pathlib.Path:
    """Histograms of τ_g and τ_loo per predicted class, one panel per τ (JW Fig. 2)."""
    records = list(records)
    measures = [m for m in _TAU_TITLES if fields.has_field(records, m)] or list(_TAU_TITLES)
    fig = Figure(figsize=(5.0 * len(measures), 3.6), layout="constrained")
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    classes, names, colors = _classes(records, label_names)
    for ax, measure in zip(axes, measures, strict=True):
        tau, present = fields.field_values(records, measure)
        defined = present & np.isfinite(tau)
        handles = []
        for number, (name, color) in enumerate(zip(names, colors, strict=True)):
            values = tau[defined & (classes == number)]
            if values.size:
                ax.hist(
                    values,
                    bins=20,
                    range=(-1.0, 1.0),
                    weights=np.full(values.size, 1 / values.size),
                    color=color,
                    alpha=0.5,
                    edgecolor=color,
                )
            handles.append(Patch(color=color, alpha=0.5, label=f"{name} (n={values.size})"))
        undefined = int((present & ~np.isfinite(tau)).sum())
        title = _TAU_TITLES[measure]
        if not present.any():
            title += " (not run)"
        elif undefined:
            title += f"\n{undefined} undefined τ excluded"
        ax.set_title(title, fontsize=10)
        ax.set_xlim(-1.0, 1.0)
        ax.set_xlabel("Kendall τ-b")
        ax.set_ylabel("share of the class's instances")
        ax.legend(handles=handles, fontsize=8, loc="upper left")
    return save_png(fig, path)


def permutation_violin(
    records: Sequence[dict], label_names: Sequence[str] | None, path: str | os.PathLike
) -> pathlib.Path:
    """Violins of the permutation median TVD per max-attention bin and class (JW Fig. 3)."""
    records = list(records)
    values, present = fields.field_values(records, "permutation_median_tvd")
    usable = present & np.isfinite(values)
    finite = values[usable]
    top = max(float(finite.max()) * 1.1 if finite.size else 0.0, 0.05)
    fig = Figure(figsize=(7.5, 4.0), layout="constrained")
    ax = fig.subplots()
    _binned_violins(ax, records, label_names, values, usable, (0.0, top))
    ax.set_ylabel("median TVD(ŷ_perm, ŷ) over permutations")
    ax.set_title("Output change when attention is permuted", fontsize=10)
    return save_png(fig, path)


def adversarial_histogram(
    records: Sequence[dict], label_names: Sequence[str] | None, path: str | os.PathLike
) -> pathlib.Path:
    """Histogram of the adversarial max JSD over [0, 0.7] per predicted class (JW Fig. 5)."""
    records = list(records)
    jsd, present = fields.field_values(records, "adversarial_max_jsd")
    usable = present & np.isfinite(jsd)
    classes, names, colors = _classes(records, label_names)
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    handles = []
    for number, (name, color) in enumerate(zip(names, colors, strict=True)):
        values = np.clip(jsd[usable & (classes == number)], 0.0, 0.7)
        if values.size:
            ax.hist(
                values,
                bins=14,
                range=(0.0, 0.7),
                weights=np.full(values.size, 1 / values.size),
                color=color,
                alpha=0.5,
                edgecolor=color,
            )
        handles.append(Patch(color=color, alpha=0.5, label=f"{name} (n={values.size})"))
    ax.axvline(LN2, color="0.4", linestyle="--", linewidth=1)
    handles.append(Line2D([], [], color="0.4", linestyle="--", label="ln 2"))
    only_original = sum(
        1
        for r, use in zip(records, usable, strict=True)
        if use and r.get("adversarial_attention") is None
    )
    title = "Max JSD of an adversarial attention with output TVD ≤ ε"
    if not present.any():
        title += " (not run)"
    else:
        title += f"\n{only_original} of {int(usable.sum())} instances: only the original survived"
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0.0, 0.7)
    ax.set_xlabel("max JSD(α_adv, α) in nats")
    ax.set_ylabel("share of the class's instances")
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    return save_png(fig, path)


def adversarial_violin(
    records: Sequence[dict], label_names: Sequence[str] | None, path: str | os.PathLike
) -> pathlib.Path:
    """Violins of the adversarial max JSD per max-attention bin and class (JW Fig. 6)."""
    records = list(records)
    jsd, present = fields.field_values(records, "adversarial_max_jsd")
    fig = Figure(figsize=(7.5, 4.0), layout="constrained")
    ax = fig.subplots()
    _binned_violins(ax, records, label_names, jsd, present & np.isfinite(jsd), (0.0, 0.7))
    ax.axhline(LN2, color="0.4", linestyle="--", linewidth=1)
    ax.set_ylabel("max JSD(α_adv, α) in nats")
    ax.set_title("Adversarial max JSD by max attention (dashed: ln 2)", fontsize=10)
    return save_png(fig, path)


def attention_heatmaps(
    records: Sequence[dict], path: str | os.PathLike, num_instances: int = 4
) -> pathlib.Path:
    """Original and adversarial attention as heat-maps over the words (JW Fig. 1).

    Picks instances with an adversary, short texts (≤ 30 tokens) first, then the highest max JSD.
    A longer text shows the 30-token window around its largest attention. Without any
    adversary, shows the original attention of the first short instances and says so.
    """
    records = list(records)
    with_attention = [i for i, r in enumerate(records) if r.get("attention") and r.get("tokens")]
    adversarial = [i for i in with_attention if records[i].get("adversarial_attention") is not None]

    def is_long(i):
        return len(records[i]["tokens"]) > MAX_HEATMAP_TOKENS

    if adversarial:
        chosen = sorted(
            adversarial,
            key=lambda i: (is_long(i), -float(records[i].get("adversarial_max_jsd") or 0.0), i),
        )[:num_instances]
        suptitle = "Original vs adversarial attention (output TVD ≤ ε); darkest = largest weight"
    else:
        chosen = sorted(with_attention, key=lambda i: (is_long(i), i))[:num_instances]
        if fields.has_field(records, "adversarial_max_jsd"):
            suptitle = "No instance has an adversarial attention: original attention only"
        else:
            suptitle = "Adversarial audit not run: original attention only"
    rows = 2 if adversarial else 1
    width = 10.0
    fig = Figure(
        figsize=(width, 0.5 + max(len(chosen), 1) * (0.45 + 0.75 * rows)), layout="constrained"
    )
    fig.suptitle(suptitle, fontsize=11, parse_math=False)
    if not chosen:
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no record has attention weights", ha="center", va="center")
        return save_png(fig, path)
    axes = fig.subplots(len(chosen), 1, squeeze=False)[:, 0]
    for ax, index in zip(axes, chosen, strict=True):
        _draw_heatmap(ax, records[index], with_adversary=bool(adversarial), width=width)
    return save_png(fig, path)


def write_all(
    records: Sequence[dict], label_names: Sequence[str] | None, out_dir: str | os.PathLike
) -> list[pathlib.Path]:
    """Writes every figure whose fields the records carry into ``out_dir``; returns the paths."""
    records = list(records)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if any(fields.has_field(records, m) for m in _TAU_TITLES):
        written.append(
            tau_histograms(records, label_names, out_dir / FIGURE_NAMES["tau_histograms"])
        )
    if fields.has_field(records, "permutation_median_tvd"):
        written.append(
            permutation_violin(records, label_names, out_dir / FIGURE_NAMES["permutation_violin"])
        )
    if fields.has_field(records, "adversarial_max_jsd"):
        written.append(
            adversarial_histogram(
                records, label_names, out_dir / FIGURE_NAMES["adversarial_histogram"]
            )
        )
        written.append(
            adversarial_violin(records, label_names, out_dir / FIGURE_NAMES["adversarial_violin"])
        )
    if fields.has_field(records, "attention"):
        written.append(attention_heatmaps(records, out_dir / FIGURE_NAMES["attention_heatmaps"]))
    return written


# ---------------------------------------------------------------------------------------------


def _classes(records, label_names) -> tuple[np.ndarray, list[str], list]:
    """Position of each record's class in the class order ``[N]``, the names and colours."""
    if not records:
        order = list(range(len(label_names))) if label_names is not None else []
        return (
            np.zeros(0, dtype=np.int64),
            [fields.class_name(c, label_names) for c in order],
            _colors(len(order)),
        )
    predicted = fields.predicted_classes(records)
    order = fields.class_order(predicted, label_names)
    position = {c: number for number, c in enumerate(order)}
    classes = np.array([position[int(c)] for c in predicted], dtype=np.int64)
    return classes, [fields.class_name(c, label_names) for c in order], _colors(len(order))


def _colors(count: int) -> list:
    palette = matplotlib.colormaps["tab10"]
    return [palette(number % 10) for number in range(count)]


def _binned_violins(ax, records, label_names, values, usable, ylim) -> None:
    """One violin per (max-attention bin, class); points where a violin cannot be drawn.

    A kernel density needs ≥ 2 distinct values, so smaller groups are drawn as points and
    empty ones are marked "n=0" (matplotlib warns or fails on those otherwise).
    """
    classes, names, colors = _classes(records, label_names)
    bins = np.full(len(records), -1, dtype=np.int64)
    chosen = [r for r, use in zip(records, usable, strict=True) if use]
    if chosen:
        bins[usable] = fields.max_attention_bin(fields.max_attention(chosen))
    num_classes = max(len(names), 1)
    width = 0.8 / num_classes
    for number in range(len(MAX_ATTENTION_BINS)):
        for class_number, color in enumerate(colors):
            x = number + (class_number - (num_classes - 1) / 2) * width
            data = values[usable & (bins == number) & (classes == class_number)]
            if data.size == 0:
                ax.text(
                    x,
                    0.01,
                    "n=0",
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color=color,
                )
            elif data.size >= 2 and float(np.std(data)) > 1e-9:
                parts = ax.violinplot([data], positions=[x], widths=0.9 * width, showmedians=True)
                for body in parts["bodies"]:
                    body.set_facecolor(color)
                    body.set_edgecolor(color)
                    body.set_alpha(0.5)
                for key in ("cmedians", "cmins", "cmaxes", "cbars"):
                    parts[key].set_color(color)
            else:
                ax.scatter(np.full(data.size, x), data, color=color, s=14, zorder=3)
    counts = [int(np.sum(usable & (bins == number))) for number in range(len(MAX_ATTENTION_BINS))]
    ax.set_xticks(
        range(len(MAX_ATTENTION_BINS)),
        [f"{label}\nn={count}" for label, count in zip(MAX_ATTENTION_BINS, counts, strict=True)],
    )
    ax.set_xlim(-0.5, len(MAX_ATTENTION_BINS) - 0.5)
    ax.set_ylim(*ylim)
    ax.set_xlabel("max attention")
    handles = [Patch(color=c, alpha=0.5, label=name) for name, c in zip(names, colors, strict=True)]
    if handles:
        ax.figure.legend(handles=handles, fontsize=8, loc="outside right upper")


def _draw_heatmap(ax, record: dict, with_adversary: bool, width: float) -> None:
    tokens = [str(token) for token in record["tokens"]]
    attention = np.asarray(record["attention"], dtype=np.float64)
    rows = [attention]
    labels = ["original α"]
    if with_adversary:
        rows.append(np.asarray(record["adversarial_attention"], dtype=np.float64))
        labels.append("adversarial α")
    start, stop = 0, len(tokens)
    if len(tokens) > MAX_HEATMAP_TOKENS:
        start = int(
            np.clip(
                np.argmax(attention) - MAX_HEATMAP_TOKENS // 2, 0, len(tokens) - MAX_HEATMAP_TOKENS
            )
        )
        stop = start + MAX_HEATMAP_TOKENS
    matrix = np.stack([row[start:stop] for row in rows])  # [rows, shown tokens]
    shown = tokens[start:stop]
    vmax = max(float(np.max(matrix)), 1e-12)  # colour scaled to this instance's largest weight
    ax.imshow(matrix, aspect="auto", cmap="Oranges", vmin=0.0, vmax=vmax, interpolation="nearest")
    # Short texts keep cells of at most 1/12 of the width, left-aligned, instead of wide slabs.
    columns = max(len(shown), MIN_HEATMAP_COLUMNS)
    ax.set_xlim(-0.5, columns - 0.5)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    # Words run horizontally when they fit their cell (≈ 0.6 em per character), else vertically.
    cell_points = (width - 1.3) * 72 / columns
    texts = [token if len(token) <= 14 else token[:13] + "…" for token in shown]
    horizontal = max(len(text) for text in texts) * 0.6 * 7 <= cell_points
    for row_number in range(matrix.shape[0]):
        for column, text in enumerate(texts):
            dark = matrix[row_number, column] > 0.6 * vmax
            ax.text(
                column,
                row_number,
                text,
                ha="center",
                va="center",
                fontsize=7,
                rotation=0 if horizontal else 90,
                color="white" if dark else "black",
                parse_math=False,
            )
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xticks([])
    ax.set_title(
        _heatmap_title(record, with_adversary, start, stop, len(tokens)),
        fontsize=8,
        parse_math=False,
    )


def _heatmap_title(record: dict, with_adversary: bool, start: int, stop: int, length: int) -> str:
    prediction = record.get("prediction") or []
    predicted = record.get("predicted_class")
    parts = [f"{record.get('id', '?')}", f"label {record.get('label', '?')}"]
    if predicted is not None and 0 <= predicted < len(prediction):
        parts.append(f"original ŷ[{predicted}] = {prediction[predicted]:.3f}")
    if with_adversary:
        parts.append(f"adversarial output TVD = {float(record.get('adversarial_tvd') or 0.0):.3f}")
        parts.append(f"max JSD = {float(record.get('adversarial_max_jsd') or 0.0):.3f}")
    if stop - start < length:
        parts.append(f"tokens {start + 1}–{stop} of {length}")
    return " · ".join(parts)


def save_png(fig: Figure, path: str | os.PathLike) -> pathlib.Path:
    """Writes ``fig`` as a PNG at ``DPI`` (folders made as needed); returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # Tokens may hold characters the default font lacks (e.g. CJK in 20News); a missing glyph
        # draws as a box and should not stop the report.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        # Fast PNG compression: the files grow about 5%, writing them takes a fifth less time.
        fig.savefig(path, dpi=DPI, pil_kwargs={"compress_level": 1})
    return path
