"""The report page in a real browser: Debian's chromium, headless, driven by Playwright.

The page of a real (tiny) audit + explain + faithfulness run: no console errors and no
network requests; sorting and filtering change the visible rows as the records say; an
instance opens with one heat-map row per explanation whose colours follow the scores. Then
the escaping cases, a damaged and unfinished run, and paging through 100,000 instances.
Screenshots go to ``$ATTN_AUDIT_SCREENSHOTS`` (default: the test's tmp folder).

Without chromium or Playwright the module is skipped with the reason; CI sets
``ATTN_AUDIT_REQUIRE_BROWSER=1`` so that a missing browser fails instead.
"""

import json
import os
import pathlib
import re

import numpy as np
import pytest

from attn_audit import data, training
from attn_audit.report import read_records, write_records
from attn_audit.report.page import write_report
from benchmarks.report_page import CHROMIUM, CHROMIUM_ARGS, write_synthetic_run
from tests._fixtures import TINY, command_runner, make_records, write_toy_sst
from tests.report.page_test import NASTY, write_run


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install playwright)"
    if not CHROMIUM:
        return "no chromium on PATH (apt-get install chromium; or set ATTN_AUDIT_CHROMIUM)"
    return None


_REASON = _missing_browser()
if _REASON and os.environ.get("ATTN_AUDIT_REQUIRE_BROWSER"):
    raise RuntimeError(f"The browser tests must run here (ATTN_AUDIT_REQUIRE_BROWSER): {_REASON}")
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"browser tests skipped: {_REASON}")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path):
    folder = pathlib.Path(os.environ.get("ATTN_AUDIT_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Page:
    """A page opened from ``file://`` that records console messages, errors and requests."""

    def __init__(self, browser, path, viewport=(1400, 1000)):
        self.page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        self.messages, self.requests, self.dialogs = [], [], []
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.url = pathlib.Path(path).resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready]", timeout=60_000)

    def column(self, key) -> list[str]:
        return self.page.eval_on_selector_all(
            f'#instances tbody td[data-key="{key}"]', "cells => cells.map(c => c.textContent)"
        )

    def indices(self) -> list[int]:
        return [
            int(i)
            for i in self.page.eval_on_selector_all(
                "#instances tbody tr", "rows => rows.map(r => r.dataset.index)"
            )
        ]

    def matching(self) -> int:
        return int(self.page.get_attribute("#browser-status", "data-matching"))

    def assert_clean(self):
        assert self.messages == [] and self.dialogs == []
        assert self.requests == [self.url]  # the file itself, nothing else


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A tiny BiLSTM trained on toy SST, then audited, explained and judged (16 instances)."""
    folder = tmp_path_factory.mktemp("page")
    data_dir = write_toy_sst(folder / "data", n=120)
    dataset = data.load_dataset("sst", data_dir)
    workdir = folder / "run"
    training.run_training(
        training.TrainConfig(epochs=1, learning_rate=0.02, **TINY), workdir, dataset=dataset
    )
    flags = (f"--workdir={workdir}", f"--data_dir={data_dir}", "--limit=16", "--batch_size=8")
    command_runner("audit")[1](*flags)
    chosen = ("--explainers=attention,gradient,occlusion,random",)
    command_runner("explain")[1](*flags, *chosen)
    command_runner("faithfulness")[1](*flags, *chosen, "--randomisation_limit=4")
    return workdir


def _records(workdir):
    return (
        read_records(workdir / "audit/test/records.jsonl"),
        read_records(workdir / "explain/test/records.jsonl"),
    )


def test_the_real_runs_page_sorts_filters_and_opens_instances(browser, real_run, screenshots):
    path = real_run / "report.html"
    assert path.exists()  # written by the last command (experiments.faithfulness)
    audit, explain = _records(real_run)
    page = Page(browser, path)
    page.page.screenshot(path=screenshots / "overview.png")
    assert page.page.text_content("#verdict").count("τ_g =") == 1
    assert page.matching() == 16 and page.indices() == list(range(16))
    for section in (
        "Agreement of attention with importance",
        "Which explanation is faithful",
        "Model randomisation",
        "Agreement between explainers",
    ):
        assert section in page.page.text_content("main")

    # sorting: τ_g descending, then ascending (missing values last both ways)
    page.page.click('th[data-key="tau_gradient"]')
    tau = {r["index"]: r["tau_gradient"] and np.float32(r["tau_gradient"]) for r in audit}
    defined = sorted((i for i in tau if tau[i] is not None), key=lambda i: (-tau[i], i))
    assert page.indices() == defined + sorted(i for i in tau if tau[i] is None)
    page.page.click('th[data-key="tau_gradient"]')
    ascending = sorted((i for i in tau if tau[i] is not None), key=lambda i: (tau[i], i))
    assert page.indices()[: len(ascending)] == ascending
    shown = [float(v) for v in page.column("tau_gradient")[: len(ascending)]]
    assert shown == sorted(shown)

    # filtering: gold and predicted class, correctness, text search, a numeric range
    page.page.select_option("#filter-label", "1")
    want = sorted(r["index"] for r in audit if r["label"] == 1)
    assert 0 < page.matching() == len(want) < 16 and sorted(page.indices()) == want
    page.page.select_option("#filter-correct", "0")
    want = sorted(r["index"] for r in audit if r["predicted_class"] != r["label"] == 1)
    assert sorted(page.indices()) == want
    page.page.select_option("#filter-label", "")
    page.page.select_option("#filter-correct", "")
    page.page.select_option("#filter-predicted", "0")
    want = sorted(r["index"] for r in audit if r["predicted_class"] == 0)
    assert page.matching() == len(want) and sorted(page.indices()) == want
    page.page.select_option("#filter-predicted", "")
    word = audit[0]["tokens"][0]
    page.page.fill("#filter-search", word)
    want = [r["index"] for r in audit if word in " ".join(r["tokens"])]
    assert sorted(page.indices()) == want and page.matching() == len(want)
    page.page.fill("#filter-search", "")
    page.page.select_option("#filter-range-key", "adversarial_max_jsd")
    page.page.fill("#filter-low", "0.3")
    want = [r["index"] for r in audit if r["adversarial_max_jsd"] >= 0.3]
    assert sorted(page.indices()) == want
    page.page.fill("#filter-low", "")
    page.page.screenshot(path=screenshots / "table.png")

    # an instance: one heat-map row per explanation, colours following the scores
    target = max(audit, key=lambda r: len(r["tokens"]))
    page.page.click(f'#instances tbody tr[data-index="{target["index"]}"]')
    page.page.wait_for_selector('table.heatmap[data-sequence="tokens"]')
    rows = page.page.eval_on_selector_all(
        'table.heatmap[data-sequence="tokens"] tr[data-row]', "rows => rows.map(r => r.dataset.row)"
    )
    assert rows == [
        "data/evidence",
        "audit/attention",
        "audit/gradient",
        "audit/loo",
        "audit/adversarial_attention",
        "explain/gradient",
        "explain/occlusion",
        "explain/random",
    ]
    record = {**next(r for r in explain if r["index"] == target["index"]), **target}
    for row in rows:
        field = row.split("/")[1]
        if record.get(field) is None:
            continue
        cells = page.page.eval_on_selector_all(
            f'table.heatmap tr[data-row="{row}"] td[data-value]',
            "cells => cells.map(c => [c.dataset.value, getComputedStyle(c).backgroundColor,"
            " c.textContent])",
        )
        values = np.array([float(v) for v, _, _ in cells])
        want = np.asarray(record[field])
        np.testing.assert_allclose(values, want, rtol=2e-3, atol=np.abs(want).max() * 2e-3)
        assert [t for _, _, t in cells] == target["tokens"]
        alphas = []
        for _, colour, _ in cells:
            found = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)", colour)
            alphas.append(float(found.group(4) or 1.0))
            rgb = found.group(1, 2, 3)
            assert rgb in {("214", "39", "40"), ("31", "119", "180")}
        # per-row scale: alpha = |score| / max |score| of the row (toy SST's evidence: all 0)
        peak = np.abs(want).max() or 1.0
        np.testing.assert_allclose(alphas, np.abs(want) / peak, atol=6e-3)
    page.page.locator("#instance").screenshot(path=screenshots / "instance.png")
    page.page.select_option("#colour-scale", "shared")
    page.page.wait_for_selector('table.heatmap tr[data-row="audit/loo"]')
    # shared scale: alpha = |score| / the largest |score| of every row of the sequence
    cells = page.page.eval_on_selector_all(
        'table.heatmap[data-sequence="tokens"] td[data-value]',
        "cells => cells.map(c => [Number(c.dataset.value), getComputedStyle(c).backgroundColor])",
    )
    limit = max(abs(value) for value, _ in cells)
    for value, colour in cells:
        alpha = re.fullmatch(r"rgba?\(\d+, \d+, \d+(?:, ([\d.]+))?\)", colour).group(1)
        assert float(alpha or 1.0) == pytest.approx(abs(value) / limit, abs=6e-3)
    page.assert_clean()


def test_texts_with_markup_quotes_bidi_and_emoji_render_as_text(browser, tmp_path, screenshots):
    records = make_records(6)
    records[2]["tokens"] = NASTY
    for field in ("attention", "gradient", "loo", "adversarial_attention"):
        records[2][field] = list(np.linspace(0.05, 0.15, len(NASTY)))
    write_report(write_run(tmp_path / "run", records))
    page = Page(browser, tmp_path / "run" / "report.html")
    text = page.page.text_content('#instances tbody tr[data-index="2"] td.text')
    assert text == " ".join(NASTY)
    assert page.page.eval_on_selector_all("#instances b, #instances script", "n => n.length") == 0
    page.page.click('#instances tbody tr[data-index="2"]')
    tokens = page.page.eval_on_selector_all(
        'table.heatmap[data-sequence="tokens"] tr.tokens td',
        "cells => cells.map(c => c.textContent)",
    )
    assert tokens[1:] == NASTY
    page.page.locator("#instance").screenshot(path=screenshots / "escaping.png")
    page.assert_clean()


def test_a_damaged_unfinished_run_says_what_is_missing(browser, tmp_path, screenshots):
    records = make_records(10)
    folder = write_run(tmp_path / "run", records, explain=False, faithfulness=False, summary=False)
    audit = folder / "audit" / "test"
    (audit / "records.jsonl").unlink()
    (audit / "parts").mkdir()
    (audit / "parts" / "plan.json").write_text(
        json.dumps({"batches": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]})
    )
    write_records(audit / "parts" / "00000.jsonl", records[:5])
    with (audit / "parts" / "00000.jsonl").open("a") as part:
        part.write('{"index": 5, "tokens": ["cut\n')
    write_report(folder)
    page = Page(browser, folder / "report.html")
    problems = page.page.text_content("#problems")
    assert "5 of 10 instances are written" in problems and "is not valid JSON" in problems
    assert "no audit or faithfulness summary yet" in page.page.text_content("#verdict")
    assert page.matching() == 5 and page.indices() == [0, 1, 2, 3, 4]
    page.page.screenshot(path=screenshots / "unfinished.png")
    page.assert_clean()


def test_paging_through_100000_instances(browser, tmp_path, screenshots):
    folder = write_synthetic_run(tmp_path / "run", 100_000, seed=0, max_length=8)
    write_report(folder)
    page = Page(browser, folder / "report.html")
    assert page.matching() == 100_000 and page.indices() == list(range(50))
    page.page.click("#page-last")
    assert page.indices() == list(range(99_950, 100_000))
    page.page.fill("#page-number", "1234")
    page.page.press("#page-number", "Enter")
    assert page.indices() == list(range(1233 * 50, 1234 * 50))
    page.page.select_option("#page-size", "200")
    assert len(page.indices()) == 200
    page.page.click('th[data-key="adversarial_max_jsd"]')
    values = [float(v) for v in page.column("adversarial_max_jsd")]
    assert values == sorted(values, reverse=True)
    page.page.select_option("#filter-label", "1")
    assert 40_000 < page.matching() < 60_000
    page.page.click(f'#instances tbody tr[data-index="{page.indices()[0]}"]')
    page.page.wait_for_selector('table.heatmap tr[data-row="audit/attention"]')
    page.page.screenshot(path=screenshots / "paging.png")
    page.assert_clean()
