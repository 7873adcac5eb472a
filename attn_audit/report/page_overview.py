"""The report page's overview, as HTML: verdict, model and provenance, JW's Table 2 beside
the paper, permutation and adversarial results, the explainer ranking with its CIs, the
agreement matrix, the randomisation table and the transformer's layer × head grid.

Every value is escaped (``html.escape``) or formatted from a number here; figures are the
run's own PNGs, embedded, and SVG drawn here.
"""

import base64
import html
import json
import pathlib
from collections.abc import Mapping

from attn_audit.report.faithfulness import CASCADE_LABELS, INDEPENDENT, difference_from
from attn_audit.report.fields import PLAUSIBILITY_TITLES
from attn_audit.report.paper import paper_row
from attn_audit.report.run_contents import RunContents
from attn_audit.report.summary import format_tau_cell
from attn_audit.report.views import parse_view_label

TAU_TITLES = {
    "tau_gradient": "τ_g (α vs gradient)",
    "tau_loo": "τ_loo (α vs LOO)",
    "tau_gradient_loo": "τ_g,loo (gradient vs LOO)",
}


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _number(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _interval(entry: Mapping | None, digits: int = 3) -> str:
    if not entry or entry.get("mean") is None:
        return "—"
    text = f"{entry['mean']:.{digits}f}"
    if entry.get("low") is not None and entry.get("high") is not None:
        text += f" [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"
    return text


def _table(headers, rows, css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers) if any(headers) else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    head = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f'<table class="{css}">{head}<tbody>{body}</tbody></table>'


def _png(path: pathlib.Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="figure" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _colour(value: float | None, limit: float = 1.0) -> str:
    """A diverging background for ``value`` in [-limit, limit]: red > 0, blue < 0."""
    if value is None:
        return ""
    strength = max(0.0, min(1.0, abs(value) / limit))
    rgb = "214, 39, 40" if value > 0 else "31, 119, 180"
    return f' style="background: rgba({rgb}, {0.08 + 0.72 * strength:.2f})"'


# ------------------------------------------------------------------ verdict


def verdict(contents: RunContents) -> list[str]:
    """Plain sentences drawn from the run's numbers and their CIs."""
    sentences = []
    audit = contents.audit.summary if contents.audit else None
    if audit and "table2" in audit:
        overall = audit["table2"].get("all") or next(iter(audit["table2"].values()))
        tau_g = (overall.get("tau_gradient") or {}).get("mean")
        tau_loo = (overall.get("tau_loo") or {}).get("mean")
        if tau_g is not None:
            strength = "weakly" if tau_g < 0.3 else "moderately" if tau_g < 0.6 else "strongly"
            text = (
                f"Attention agrees {strength} with gradient importance: mean Kendall "
                f"τ_g = {tau_g:.2f}"
            )
            share = (overall.get("tau_gradient") or {}).get("sig_frac")
            if share is not None:
                text += f" ({share:.0%} of instances significant at p ≤ 0.05)"
            if tau_loo is not None:
                text += f", and τ_loo = {tau_loo:.2f} with leave-one-out"
            sentences.append(text + f" (n = {overall.get('n', audit['n_instances'])}).")
    if audit and "permutation" in audit:
        median = audit["permutation"]["median"]
        if median is not None:
            sentences.append(
                "Shuffling the attention weights among the tokens changes the output by a median "
                f"TVD {median:.3f} (IQR {_number(audit['permutation']['q25'])}–"
                f"{_number(audit['permutation']['q75'])})."
            )
    if audit and "adversarial" in audit:
        share = audit["adversarial"].get("share_jsd_ge_0_6")
        eps = audit.get("provenance", {}).get("audit", {}).get("adversary", {}).get("epsilon")
        if share is not None:
            sentences.append(
                f"For {share:.0%} of instances an attention distribution at JSD ≥ 0.6 from the "
                f"model's own leaves the prediction within TVD "
                f"{'ε' if eps is None else eps} of the original."
            )
    faithfulness = contents.faithfulness.summary if contents.faithfulness else None
    if faithfulness and faithfulness.get("ranking") and faithfulness.get("comparisons"):
        ranking, removal = faithfulness["ranking"], faithfulness["removals"][0]
        best = ranking[0]
        pairs = faithfulness["comparisons"].get(f"aopc_comprehensiveness/{removal}", {})
        count = faithfulness["instances"]
        if "attention" in ranking:
            rank = ranking.index("attention") + 1
            text = (
                f"By ERASER comprehensiveness ({removal}), attention ranks {rank} of "
                f"{len(ranking)} explainers"
            )
            gap = difference_from(pairs, "attention", best) if best != "attention" else None
            if gap and gap.get("low") is not None:
                verdict_word = (
                    "significantly less faithful than"
                    if gap["significant"] and gap["mean"] > 0
                    else "not significantly different from"
                )
                text += (
                    f"; it is {verdict_word} the best, {best} (AOPC difference "
                    f"{gap['mean']:.3f}, 95% CI [{gap['low']:.3f}, {gap['high']:.3f}], "
                    f"paired bootstrap over {count} instances)"
                )
            elif best == "attention":
                text += "; it is the most faithful explainer here"
            baseline = (
                difference_from(pairs, "random", "attention") if "random" in ranking else None
            )
            if baseline and baseline.get("low") is not None:
                better = baseline["significant"] and baseline["mean"] > 0
                text += (
                    f", and {'significantly better' if better else 'not significantly better'}"
                    f" than random ({baseline['mean']:+.3f} "
                    f"[{baseline['low']:.3f}, {baseline['high']:.3f}])"
                )
            sentences.append(text + ".")
        else:
            sentences.append(
                f"The most faithful explainer here by ERASER comprehensiveness "
                f"({removal}) is {best}."
            )
    if not sentences:
        sentences.append(
            "This run holds no audit or faithfulness summary yet, so no verdict "
            "can be drawn; the instances below are what it holds."
        )
    return sentences


# ------------------------------------------------------------------ sections


def _provenance(contents: RunContents) -> str:
    config, model = contents.config, contents.config.get("model", {})
    data = config.get("data", {})
    test = contents.metrics.get("test") or {}
    rows = [
        ("run folder", _e(contents.workdir.name)),
        ("data", _e(f"{data.get('name', '?')}, split {contents.split}")),
        (
            "model",
            _e(
                ", ".join(f"{k} {model[k]}" for k in ("encoder", "attention", "task") if k in model)
                or "?"
            ),
        ),
    ]
    if test:
        rows.append(
            (
                "test metrics",
                _e(", ".join(f"{k} {v:.3f}" for k, v in test.items() if isinstance(v, float))),
            )
        )
    for job in ("audit", "explain", "faithfulness"):
        record_set = getattr(contents, job)
        if record_set is None:
            continue
        summary = record_set.summary or {}
        provenance = summary.get("provenance", {}) if isinstance(summary, dict) else {}
        state = "finished" if record_set.complete else "not finished"
        cells = [f"{len(record_set.records)} instances ({state})"]
        for key in ("command", "code_version", "jax", "devices", "machine"):
            if provenance.get(key):
                value = provenance[key]
                cells.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
        timings = dict(provenance.get("timings") or {})
        for found in list(timings.values()):  # faithfulness: one entry per stage
            if isinstance(found, dict):
                for key in ("compile_seconds", "compile_wait_seconds", "run_seconds"):
                    if isinstance(found.get(key), (int, float)):
                        timings[key] = timings.get(key, 0.0) + found[key]
        seconds = [
            f"{k.removesuffix('_seconds')} {timings[k]:.1f} s"
            for k in (
                "compile_seconds",
                "compile_wait_seconds",
                "run_seconds",
                "wall_seconds",
                "process_seconds",
            )
            if isinstance(timings.get(k), (int, float))
        ]
        if seconds:
            cells.append("seconds: " + ", ".join(seconds))
        rows.append((job, "<br>".join(_e(cell) for cell in cells)))
    return _table(["", ""], rows, "provenance")


def _table2(contents: RunContents) -> str:
    audit = contents.audit.summary if contents.audit else None
    if not audit or "table2" not in audit:
        return ""
    data, model = contents.config.get("data", {}), contents.config.get("model", {})
    paper = paper_row(data.get("name", ""), model.get("encoder", ""), contents.label_names)
    first = next(iter(audit["table2"].values()))
    measures = [m for m in TAU_TITLES if m in first]
    rows = []
    for name, row in audit["table2"].items():
        rows.append(
            [_e(name), "this run", str(row["n"]), *(_e(format_tau_cell(row[m])) for m in measures)]
        )
        if paper:
            cells = [paper.get(m, {}).get(name, "—") for m in measures]
            if any(cell != "—" for cell in cells):
                rows.append([_e(name), "JW 2019", "", *(_e(c) for c in cells)])
    return (
        "<h2>Agreement of attention with importance (JW Table 2)</h2>"
        "<p>Mean ± std (share with p ≤ 0.05) of Kendall τ-b per predicted class.</p>"
        + _table(["class", "source", "n", *(TAU_TITLES[m] for m in measures)], rows)
        + _png(contents.audit.folder / "tau_histograms.png", "τ histograms")
    )


def _permutation_and_adversarial(contents: RunContents) -> str:
    audit = contents.audit.summary if contents.audit else None
    parts = []
    if audit and "permutation" in audit:
        permutation = audit["permutation"]
        rows = [
            [_e(r["bin"]), str(r["n"]), _number(r["median"]), _number(r["q25"]), _number(r["q75"])]
            for r in permutation["bins"]
        ]
        parts += [
            "<h2>Permutation (JW Fig. 3)</h2>",
            f"<p>Median TVD(ŷ_perm, ŷ) over shuffles of α: {_number(permutation['median'])}"
            f" (n = {permutation['n']}), by the instance's max attention:</p>",
            _table(["max attention", "n", "median", "q25", "q75"], rows),
            _png(contents.audit.folder / "permutation_violin.png", "permutation"),
        ]
    if audit and "adversarial" in audit:
        adversarial = audit["adversarial"]
        quantiles = adversarial["max_jsd_quantiles"]
        parts += [
            "<h2>Adversarial attention (JW Figs. 5–6)</h2>",
            "<p>Max JSD (nats, at most ln 2 ≈ 0.693) between α and an attention whose "
            f"output stays within TVD ε of the original; n = {adversarial['n']}; share "
            f"with max JSD ≥ 0.6: {_number(adversarial['share_jsd_ge_0_6'])}; only the "
            f"original survived: {_number(adversarial['share_only_original'])}.</p>",
            _table(
                ["quantile", *quantiles], [["max JSD", *(_number(v) for v in quantiles.values())]]
            ),
            _png(contents.audit.folder / "adversarial_histogram.png", "adversarial"),
        ]
    return "".join(parts)


def _forest(summary: Mapping, removal: str) -> str:
    """SVG: each explainer's mean AOPC comprehensiveness with its 95% CI, best first."""
    names = summary["ranking"]
    entries = [
        summary["explainers"][n].get("aopc_comprehensiveness", {}).get(removal) or {} for n in names
    ]
    points = [
        v for e in entries for v in (e.get("low"), e.get("high"), e.get("mean")) if v is not None
    ]
    if not points:
        return ""
    low, high = min(0.0, *points), max(points)
    span = (high - low) or 1.0
    width, left, row = 560, 170, 22
    height = row * len(names) + 30

    def x(value):
        return left + (width - left - 20) * (value - low) / span

    lines = [
        f'<svg class="forest" width="{width}" height="{height}" role="img" '
        f'aria-label="AOPC comprehensiveness with 95% CIs">',
        f'<line x1="{x(0):.1f}" y1="0" x2="{x(0):.1f}" y2="{height - 25}" '
        'stroke="#999" stroke-dasharray="3,3"/>',
    ]
    for i, (name, entry) in enumerate(zip(names, entries, strict=True)):
        y = row * i + 14
        colour = "#d62728" if name == "attention" else "#1f77b4"
        lines.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{_e(name)}</text>')
        if entry.get("low") is not None and entry.get("high") is not None:
            lines.append(
                f'<line x1="{x(entry["low"]):.1f}" y1="{y}" x2="{x(entry["high"]):.1f}" '
                f'y2="{y}" stroke="{colour}" stroke-width="2"/>'
            )
        if entry.get("mean") is not None:
            lines.append(
                f'<circle cx="{x(entry["mean"]):.1f}" cy="{y}" r="4" fill="{colour}">'
                f"<title>{_e(name)}: {_interval(entry)}</title></circle>"
            )
    axis_y = height - 12
    for value in (low, (low + high) / 2, high):
        lines.append(
            f'<text x="{x(value):.1f}" y="{axis_y}" text-anchor="middle">{value:.3f}</text>'
        )
    return "".join(lines) + "</svg>"


def _faithfulness(contents: RunContents) -> str:
    summary = contents.faithfulness.summary if contents.faithfulness else None
    if not summary or not summary.get("ranking"):
        return ""
    removals, entries = summary["removals"], summary["explainers"]
    headers = ["rank", "explainer"]
    for removal in removals:
        headers += [f"AOPC comp. ({removal}) ↑", f"AOPC suff. ({removal}) ↓"]
    headers += ["flip fraction ↓"]
    rows = []
    for rank, name in enumerate(summary["ranking"], start=1):
        cells = [str(rank), f"<b>{_e(name)}</b>" if name == "attention" else _e(name)]
        for removal in removals:
            for curve in ("aopc_comprehensiveness", "aopc_sufficiency"):
                cells.append(_interval(entries[name].get(curve, {}).get(removal)))
        cells.append(_interval(entries[name].get("flip_fraction")))
        rows.append(cells)
    parts = [
        "<h2>Which explanation is faithful here (ERASER, 95% bootstrap CIs)</h2>",
        f"<p>{summary['instances']} instances; means with 95% CIs over 1,000 bootstrap "
        "resamples of instances. Ranked by comprehensiveness AOPC under "
        f"{_e(removals[0])} (higher: removing the top tokens changes the prediction more).</p>",
        _forest(summary, removals[0]),
        _table(headers, rows, "ranking"),
    ]
    tau = (summary.get("agreement") or {}).get("tau")
    if tau:
        names = summary["ranking"]
        rows = []
        for first in names:
            cells = [_e(first)]
            for second in names:
                entry = tau.get(f"{first}|{second}") or tau.get(f"{second}|{first}")
                mean = 1.0 if first == second else (entry or {}).get("mean")
                title = "" if first == second else _e(_interval(entry, 2))
                cells.append(f'<span title="{title}"{_colour(mean)}>{_number(mean, 2)}</span>')
            rows.append(cells)
        parts += [
            "<h3>Agreement between explainers (mean Kendall τ over instances)</h3>",
            _table(["", *names], rows, "matrix"),
        ]
    randomisation = summary.get("randomisation")
    if randomisation:
        variants = [v for v in (*CASCADE_LABELS, *INDEPENDENT) if v in randomisation]
        titles = [CASCADE_LABELS.get(v, v.replace("independent/", "only ")) for v in variants]
        rows = [
            [
                _e(name),
                *(
                    f"<span{_colour(randomisation[v].get(name, {}).get('mean'))}>"
                    f"{_interval(randomisation[v].get(name), 2)}</span>"
                    for v in variants
                ),
            ]
            for name in summary["ranking"]
        ]
        parts += [
            "<h3>Model randomisation (Adebayo et al.): Spearman ρ with the trained model's "
            "explanation</h3>",
            f"<p>{summary.get('randomisation_instances', 0)} instances. Cascade: re-initialise "
            "from the decoder down; an explanation that stays at ρ ≈ 1 ignores those weights."
            "</p>",
            _table(["explainer", *titles], rows, "matrix"),
        ]
    figures = contents.workdir / "faithfulness" / contents.split / "figures"
    for name, alt in (
        ("aopc_curves", "ERASER curves"),
        ("randomisation_cascade", "randomisation cascade"),
    ):
        parts.append(_png(figures / f"{name}.png", alt))
    return "".join(parts)


def _plausibility(contents: RunContents) -> str:
    summary = contents.plausibility
    if not summary or not summary.get("ranking"):
        return ""
    titles = PLAUSIBILITY_TITLES
    rows = []
    for rank, name in enumerate(summary["ranking"], start=1):
        entry = summary["explanations"][name]
        rows.append([str(rank), f"<b>{_e(name)}</b>" if name == "attention" else _e(name),
                     *(_interval(entry.get(m)) for m in titles)])  # fmt: skip
    return (
        "<h2>Does the explanation find the evidence? (plausibility, SPEC §9)</h2>"
        f"<p>Against the data's human evidence ({_e(summary['provenance'].get('evidence', ''))})"
        f"; {summary['defined']} of {summary['instances']} instances have evidence that is "
        "neither empty nor every token. Tokens ranked by |score|; 95% bootstrap CIs.</p>"
        + _table(["rank", "explanation", *titles.values()], rows, "ranking")
    )


def _views(contents: RunContents) -> str:
    summary = contents.views.summary if contents.views else None
    if not summary or not summary.get("views"):
        return ""
    parts = [
        "<h2>Layer × head (attention views)</h2>",
        f"<p>{summary['n_instances']} instances. Mean τ per view; * where the one-sided "
        f"Wilcoxon test of τ > 0 survives Benjamini–Hochberg at q = {summary['q']}.</p>",
    ]
    for measure in ("tau_gradient", "tau_loo"):
        grid: dict = {}
        heads = set()
        for label, view in summary["views"].items():
            kind, layer, head = parse_view_label(label)
            if kind not in ("head", "mean") or measure not in view:
                continue
            column = "mean" if kind == "mean" else head
            heads.add(column)
            grid.setdefault(layer, {})[column] = view[measure]
        if not grid:
            continue
        columns = sorted(h for h in heads if h != "mean") + (["mean"] if "mean" in heads else [])
        rows = []
        for layer in sorted(grid):
            cells = [f"layer {layer}"]
            for column in columns:
                entry = grid[layer].get(column)
                mean = (entry or {}).get("mean")
                mark = "*" if (entry or {}).get("significant_bh") else ""
                cells.append(f"<span{_colour(mean, 0.5)}>{_number(mean, 2)}{mark}</span>")
            rows.append(cells)
        headers = ["", *(f"head {c}" if c != "mean" else "mean" for c in columns)]
        parts += [f"<h3>{_e(TAU_TITLES[measure])}</h3>", _table(headers, rows, "matrix")]
    return "".join(parts)


def overview_html(contents: RunContents) -> str:
    """The overview sections, in reading order, as one HTML fragment."""
    problems = ""
    if contents.problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in contents.problems)
        problems = (
            f'<section class="problems" id="problems"><h2>What this page is missing'
            f"</h2><ul>{items}</ul></section>"
        )
    sentences = " ".join(_e(s) for s in verdict(contents))
    return (
        problems
        + f'<section id="verdict"><h2>Verdict</h2><p class="verdict">{sentences}</p></section>'
        + f'<section id="provenance"><h2>Model, data and provenance</h2>{_provenance(contents)}'
        + "</section>"
        + f'<section id="audit">{_table2(contents)}{_permutation_and_adversarial(contents)}'
        + "</section>"
        + f'<section id="faithfulness">{_faithfulness(contents)}</section>'
        + f'<section id="plausibility">{_plausibility(contents)}</section>'
        + f'<section id="views">{_views(contents)}</section>'
    )


def page_title(contents: RunContents) -> str:
    data, model = contents.config.get("data", {}), contents.config.get("model", {})
    parts = [data.get("name"), model.get("encoder"), model.get("attention")]
    return "attn_audit: " + " · ".join(p for p in parts if p) + f" ({contents.split})"


def embedded_json(value) -> str:
    """``value`` as JSON that is safe inside ``<script type="application/json">``: no
    ``<``, ``>`` or ``&`` can close the element or open a comment; U+2028/9 escaped too."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text
