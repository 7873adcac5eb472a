r"""The report page's size and time to first paint, in headless chromium.

  python -m benchmarks.report_page --runs=runs/sst_lstm_tanh,runs/snli_lstm_tanh \
      [--synthetic=100000 --repeats=3 --results=benchmarks/REPORT_RESULTS.md]

For each run folder (its ``report.html`` rebuilt from the records, as
``experiments.report`` does) and a generated audit run of ``--synthetic`` instances:
the seconds to build the page, its size, and in the browser (Debian's chromium, driven
by Playwright, a new page per load from ``file://``): first contentful paint (the
overview), the table ready (its first page drawn, ``performance.mark``) and every
instance's heat-map scores decoded; the median of ``--repeats`` loads.
"""

import json
import os
import pathlib
import shutil
import statistics
import tempfile
import time

import numpy as np
from absl import app, flags

from attn_audit.report import summarize
from attn_audit.report.page import write_report
from attn_audit.report.run_contents import read_run
from benchmarks import _machine
from benchmarks._results import command_line, write_results

_RUNS = flags.DEFINE_list("runs", [], "Run folders whose pages to measure (test split).")
_SYNTHETIC = flags.DEFINE_integer("synthetic", 100_000, "Instances of the generated run (0: none).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Loads per page; the median is reported.")
_RESULTS = flags.DEFINE_string("results", None, "Markdown file to write the table to.")
_SCREENSHOTS = flags.DEFINE_string(
    "screenshots", None, "Save the first run's overview and an opened instance here (PNG)."
)
_SCRATCH = flags.DEFINE_string(
    "scratch", None, "Folder for the generated run (default: a new temporary folder)."
)

CHROMIUM = os.environ.get("ATTN_AUDIT_CHROMIUM") or shutil.which("chromium")
# As the machines' notes advise: no background networking (the network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "pa", "qu", "de"]


def write_synthetic_run(folder, count: int, seed: int = 0, max_length: int = 48) -> pathlib.Path:
    """A run folder holding an audit of ``count`` generated instances (the four audits'
    fields, lengths 4 to ``max_length``, 4,000 words), its config and summary."""
    folder = pathlib.Path(folder)
    rng = np.random.default_rng(seed)
    vocabulary = ["".join(rng.choice(SYLLABLES, int(rng.integers(1, 4)))) for _ in range(4000)]
    lengths = rng.integers(4, max_length + 1, count)
    words = rng.integers(0, len(vocabulary), int(lengths.sum()))
    noise = rng.random((4, int(lengths.sum())))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    labels, positive = rng.integers(0, 2, count), rng.random(count)
    scalars = rng.random((6, count))
    records = []
    for i in range(count):
        span = slice(starts[i], starts[i + 1])
        attention, gradient, loo, adversarial = (n[span] ** 3 for n in noise)
        attention, gradient, adversarial = (a / a.sum() for a in (attention, gradient, adversarial))
        records.append(
            {
                "id": f"synthetic-{i}",
                "index": i,
                "tokens": [vocabulary[w] for w in words[span]],
                "label": int(labels[i]),
                "prediction": [1 - positive[i], positive[i]],
                "predicted_class": int(positive[i] > 0.5),
                "attention": attention.tolist(),
                "max_attention": float(attention.max()),
                "gradient": gradient.tolist(),
                "loo": (loo * 0.1).tolist(),
                "tau_gradient": float(scalars[0, i] - 0.3),
                "p_gradient": float(scalars[1, i]),
                "tau_loo": float(scalars[2, i] - 0.3),
                "p_loo": float(scalars[3, i]),
                "permutation_median_tvd": float(scalars[4, i] * 0.2),
                "adversarial_attention": adversarial.tolist(),
                "adversarial_max_jsd": float(scalars[5, i] * 0.69),
                "adversarial_tvd": float(scalars[4, i] * 0.05),
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "data": {"name": "synthetic", "label_names": ["negative", "positive"]},
        "model": {"encoder": "lstm", "attention": "tanh", "task": "classification"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    # as write_records writes them (the values are Python floats already), faster
    lines = (json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    (folder / "audit" / "test").mkdir(parents=True, exist_ok=True)
    (folder / "audit" / "test" / "records.jsonl").write_text("".join(lines), encoding="utf-8")
    summary = summarize(records, ["negative", "positive"], {"generated": f"{count} instances"})
    (folder / "audit" / "test" / "summary.json").write_text(json.dumps(summary))
    return folder


def measure(page_path: pathlib.Path, browser, repeats: int) -> dict:
    """Median seconds of first contentful paint, table ready and scores decoded."""
    found = {"first_paint": [], "table": [], "scores": []}
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(page_path.resolve().as_uri())
        page.wait_for_selector('body[data-ready="scores"]', timeout=300_000)
        timing = page.evaluate(
            "() => ({paint: performance.getEntriesByName('first-contentful-paint')[0]?.startTime,"
            " table: performance.getEntriesByName('attn-audit-table-ready')[0]?.startTime,"
            " scores: performance.getEntriesByName('attn-audit-scores-ready')[0]?.startTime})"
        )
        page.close()
        found["first_paint"].append(timing["paint"] / 1000)
        found["table"].append(timing["table"] / 1000)
        found["scores"].append(timing["scores"] / 1000)
    return {name: statistics.median(values) for name, values in found.items()}


def _version(package: str) -> str:
    from importlib import metadata

    return metadata.version(package)


def screenshots(page_path: pathlib.Path, browser, folder: pathlib.Path) -> None:
    """``report_overview.png`` (the top of the page) and ``report_instance.png`` (the
    longest of the first page's instances, opened)."""
    folder.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(page_path.resolve().as_uri())
    page.wait_for_selector('body[data-ready="scores"]', timeout=300_000)
    page.screenshot(path=folder / "report_overview.png")
    longest = page.eval_on_selector_all(
        '#instances tbody td[data-key="num_tokens"]',
        "cells => cells.map(c => Number(c.textContent)).reduce("
        "(best, n, i, all) => (n <= 24 && n > all[best] ? i : best), 0)",
    )
    page.click(f"#instances tbody tr:nth-child({longest + 1})")
    page.wait_for_selector("table.heatmap")
    page.locator("#instance").screenshot(path=folder / "report_instance.png")
    page.close()


def main(argv):
    del argv
    from playwright.sync_api import sync_playwright

    runs = [pathlib.Path(run) for run in _RUNS.value]
    if _SYNTHETIC.value:
        scratch = pathlib.Path(_SCRATCH.value or tempfile.mkdtemp(prefix="report_page_"))
        shutil.rmtree(scratch / f"synthetic_{_SYNTHETIC.value}", ignore_errors=True)
        started = time.perf_counter()
        runs.append(
            write_synthetic_run(scratch / f"synthetic_{_SYNTHETIC.value}", _SYNTHETIC.value)
        )
        print(f"generated {_SYNTHETIC.value} records in {time.perf_counter() - started:.1f} s")
    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        version = browser.version
        for run in runs:
            started = time.perf_counter()
            path = write_report(run)
            build = time.perf_counter() - started
            instances = sum(len(s.records) for s in read_run(run).jobs()[:1])
            timing = measure(path, browser, _REPEATS.value)
            if _SCREENSHOTS.value and run == runs[0]:
                screenshots(path, browser, pathlib.Path(_SCREENSHOTS.value))
            row = (
                f"| {run.name} | {instances} | {build:.1f} | {path.stat().st_size / 2**20:.1f} | "
                f"{timing['first_paint']:.2f} | {timing['table']:.2f} | "
                f"{timing['scores']:.2f} |"
            )
            print(row, flush=True)
            rows.append(row)
        browser.close()
    header = [
        "# The report page: size and time to first paint",
        "",
        f"Command: `{command_line('benchmarks.report_page', [_RUNS, _SYNTHETIC, _REPEATS])}`",
        "",
        f"Machine: {_machine.describe('playwright ' + _version('playwright'))}; chromium {version}"
        " (Debian's), headless.",
        f"Median of {_REPEATS.value} loads from file://, a new page each; seconds from navigation.",
        "",
        "| run | instances | build s | size MiB | first paint s | table ready s | "
        "all scores decoded s |",
        "|---|---|---|---|---|---|---|",
    ]
    report = "\n".join(header + rows) + "\n"
    print(report)
    if _RESULTS.value:
        write_results(pathlib.Path(_RESULTS.value), report)


if __name__ == "__main__":
    app.run(main)
