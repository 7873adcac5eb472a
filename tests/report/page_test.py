"""The report page's data, without a browser: reading a run folder (finished, partial,
damaged), packing the instances (read back against the records), the verdict, and the
escaping of everything a record can hold. The browser tests are in page_browser_test.py."""

import json
import re

import numpy as np
import pytest

from attn_audit.report import write_records
from attn_audit.report.page import render_page, report_path, write_report
from attn_audit.report.page_data import pack_instances, unpack_instances
from attn_audit.report.page_overview import embedded_json, verdict
from attn_audit.report.run_contents import read_run
from attn_audit.report.summary import summarize
from tests._fixtures import make_records

NASTY = [
    "<script>alert(1)</script>",
    '"quoted"',
    "it's",
    "</script>",
    "\u202eevil\u202c",
    "😀",
    "<b>bold</b>",
    "&amp;",
    "<!--",
    "\u2028",
]
EXPLAINERS = ("attention", "occlusion", "random")


def write_run(folder, records, explain=True, faithfulness=True, summary=True):
    """A run folder as the commands leave it: config, audit, explain and faithfulness."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "data": {"name": "sst", "label_names": ["negative", "positive"]},
        "model": {"encoder": "lstm", "attention": "tanh", "task": "classification"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.8}}))
    audit = folder / "audit" / "test"
    write_records(audit / "records.jsonl", records)
    if summary:
        found = summarize(records, ["negative", "positive"], {"command": "python -m x"})
        (audit / "summary.json").write_text(json.dumps(found))
    rng = np.random.default_rng(1)
    if explain:
        explained = [
            {
                **{
                    k: r[k]
                    for k in (
                        "id",
                        "index",
                        "tokens",
                        "label",
                        "prediction",
                        "predicted_class",
                        "attention",
                    )
                },
                "occlusion": rng.normal(size=len(r["tokens"])).tolist(),
                "random": rng.random(len(r["tokens"])).tolist(),
            }
            for r in records
        ]
        write_records(folder / "explain" / "test" / "records.jsonl", explained)
        (folder / "explain" / "test" / "summary.json").write_text("{}")
    if faithfulness:
        metrics = [
            {
                "id": r["id"],
                "index": r["index"],
                "num_tokens": len(r["tokens"]),
                "metrics": {
                    name: {"aopc_comprehensiveness": {"delete": float(rng.random())}}
                    for name in EXPLAINERS
                },
            }
            for r in records
        ]
        write_records(folder / "faithfulness" / "test" / "metrics" / "records.jsonl", metrics)
        (folder / "faithfulness" / "test" / "summary.json").write_text(
            json.dumps({"removals": ["delete"], "ranking": [], "instances": len(records)})
        )
    return folder


def test_packed_instances_read_back_as_the_records(tmp_path):
    records = make_records(30)
    contents = read_run(write_run(tmp_path / "run", records))
    assert contents.problems == []
    packed = pack_instances(contents)
    found = unpack_instances(packed)
    assert found["sequences"]["tokens"] == [r["tokens"] for r in records]
    np.testing.assert_array_equal(found["columns"]["index"], np.arange(30))
    for field in ("tau_gradient", "adversarial_max_jsd", "max_attention"):
        expected = [np.nan if r[field] is None else r[field] for r in records]
        np.testing.assert_allclose(found["columns"][field], np.float32(expected), rtol=1e-7)
    np.testing.assert_array_equal(
        found["columns"]["predicted_class"], [r["predicted_class"] for r in records]
    )
    explained = {r["index"]: r for r in contents.explain.records}
    for name, source in (
        ("audit/attention", records),
        ("audit/loo", records),
        ("explain/occlusion", [explained[i] for i in range(30)]),
    ):
        field = name.split("/")[1]
        for got, record in zip(found["scores"][name], source, strict=True):
            want = np.asarray(record[field])
            # float16 relative to the row's max |score|: 2^-11 of it, plus rounding of the scale
            np.testing.assert_allclose(got, want, rtol=0, atol=np.abs(want).max() * 2**-10)
    adversarial = found["scores"]["audit/adversarial_attention"]
    assert [a is None for a in adversarial] == [r["adversarial_attention"] is None for r in records]
    rows = {row["name"]: row for row in packed.meta["rows"]}
    assert "explain/attention" not in rows  # the audit's attention already is a row
    assert rows["explain/occlusion"]["signed"] and not rows["audit/attention"]["signed"]
    columns = [c["key"] for c in packed.meta["columns"]]
    assert [c for c in columns if c.startswith("aopc/")] == [f"aopc/{n}" for n in EXPLAINERS]


def test_escaping_every_text_of_a_record_stays_text(tmp_path):
    records = make_records(4)
    records[0]["tokens"] = NASTY
    for field in ("attention", "gradient", "loo", "adversarial_attention"):
        records[0][field] = list(np.full(len(NASTY), 1 / len(NASTY)))
    records[0]["id"] = "</script><script>alert('id')</script>"
    page = render_page(read_run(write_run(tmp_path / "run", records)))
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)
    assert len(scripts) == 5  # meta, three blobs, the page's script: nothing closed early
    meta = json.loads(scripts[0])
    assert meta["vocab"][: len(NASTY)] == NASTY and meta["ids"][0] == records[0]["id"]
    assert "<script>alert" not in page and "<b>bold" not in page and "\u2028" not in scripts[0]


def test_damaged_and_partial_runs_say_what_is_missing(tmp_path):
    records = make_records(12)
    folder = write_run(tmp_path / "run", records, faithfulness=False)
    lines = (folder / "audit" / "test" / "records.jsonl").read_text().splitlines()
    lines[3] = lines[3][:40]  # a line cut short
    (folder / "audit" / "test" / "records.jsonl").write_text("\n".join(lines) + "\n")
    explain = folder / "explain" / "test"
    (explain / "records.jsonl").unlink()
    (explain / "parts").mkdir()
    (explain / "parts" / "plan.json").write_text(
        json.dumps({"batches": [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9, 10, 11]]})
    )
    write_records(
        explain / "parts" / "00000.jsonl", [{"index": i, "tokens": ["a"]} for i in (0, 1, 2)]
    )
    contents = read_run(folder)
    assert [r["index"] for r in contents.audit.records] == [i for i in range(12) if i != 3]
    assert not contents.audit.complete and not contents.explain.complete
    text = " ".join(contents.problems)
    assert "line 4 is not valid JSON" in text and "3 of 12 instances are written" in text
    assert "python -m experiments.explain" in text
    page = render_page(contents)
    assert "What this page is missing" in page and "line 4 is not valid JSON" in page


def test_missing_runs_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; pass the --workdir"):
        read_run(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no audit, explanations or faithfulness"):
        write_report(tmp_path / "empty", "dev")
    assert report_path(tmp_path, "dev").name == "report_dev.html"
    assert report_path(tmp_path).name == "report.html"


def test_verdict_reads_the_numbers_and_their_intervals(tmp_path):
    records = make_records(30)
    folder = write_run(tmp_path / "run", records)
    summary = {
        "removals": ["delete"],
        "instances": 30,
        "ranking": ["occlusion", "attention", "random"],
        "comparisons": {
            "aopc_comprehensiveness/delete": {
                "attention|occlusion": {
                    "mean": -0.1,
                    "low": -0.15,
                    "high": -0.05,
                    "significant": True,
                    "count": 30,
                },
                "attention|random": {
                    "mean": 0.02,
                    "low": -0.01,
                    "high": 0.05,
                    "significant": False,
                    "count": 30,
                },
            }
        },
    }
    (folder / "faithfulness" / "test" / "summary.json").write_text(json.dumps(summary))
    text = " ".join(verdict(read_run(folder)))
    tau = summarize(records, ["negative", "positive"], {})["table2"]["all"]["tau_gradient"]
    assert f"τ_g = {tau['mean']:.2f}" in text
    assert "attention ranks 2 of 3" in text
    assert "significantly less faithful than the best, occlusion (AOPC difference 0.100" in text
    assert "not significantly better than random" in text


def test_embedded_json_cannot_close_its_script_element():
    value = {"text": "</script><!-- & \u2028"}
    text = embedded_json(value)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == value
