"""All 18 bAbI models: 6c37829 (6 answers, optax) against the current rows and JW's runs.

Reads ``results/table2/babi*.json`` at 6c37829 (``git show``) and in the working tree;
writes
``compare.csv`` beside this file. τ_g is the instance-weighted mean over predicted classes
(JW's bAbI cell). JW's runs: successar/AttentionExplanation, ``graph_outputs/evaluate/`` and
``graph_outputs/GradientPval_kendalltau/`` (``cnn`` is their ``cnn(1,3,5,7)``).

    python results/isolating/babi_answer_layer/compare.py
"""

import csv
import json
import pathlib
import subprocess

BEFORE, AFTER = "6c37829", "WORKTREE"
# (accuracy, τ_g) of the runs committed with JW's code.
JW_RUNS = {
    ("babi1", "lstm", "tanh"): (1.000, 0.2508), ("babi1", "lstm", "dot"): (0.998, 0.4370),
    ("babi1", "cnn", "tanh"): (0.887, 0.2447), ("babi1", "cnn", "dot"): (0.889, 0.1685),
    ("babi1", "average", "tanh"): (0.436, 0.7174), ("babi1", "average", "dot"): (0.430, 0.7133),
    ("babi2", "lstm", "tanh"): (0.653, -0.0168), ("babi2", "lstm", "dot"): (0.427, 0.1696),
    ("babi2", "cnn", "tanh"): (0.333, 0.1805), ("babi2", "cnn", "dot"): (0.340, 0.1522),
    ("babi2", "average", "tanh"): (0.167, 0.6777), ("babi2", "average", "dot"): (0.314, 0.5995),
    ("babi3", "lstm", "tanh"): (0.643, 0.2390), ("babi3", "lstm", "dot"): (0.515, 0.2994),
    ("babi3", "cnn", "tanh"): (0.294, 0.1800), ("babi3", "cnn", "dot"): (0.288, 0.0144),
    ("babi3", "average", "tanh"): (0.320, 0.6073), ("babi3", "average", "dot"): (0.316, 0.4802),
}  # fmt: skip
ROOT = pathlib.Path(__file__).resolve().parents[3]


def entry(commit: str, name: str) -> dict:
    path = f"results/table2/{name}.json"
    if commit == "WORKTREE":
        return json.loads((ROOT / path).read_text())
    shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True)
    return json.loads(shown.stdout)


def summary(cell: dict) -> tuple[float, float, int, str]:
    """(accuracy, instance-weighted τ_g, classes predicted, size of the answer layer)."""
    rows = cell["rows"]
    n = sum(row["n"] for row in rows)
    tau = sum(row["n"] * row["tau_g_mean"] for row in rows) / n
    return cell["test_accuracy"], tau, len(rows), len(cell["label_names"])


def main() -> None:
    lines = []
    for (dataset, encoder, attention), (jw_accuracy, jw_tau) in JW_RUNS.items():
        name = f"{dataset}_{encoder}_{attention}"
        before, after = entry(BEFORE, name), entry(AFTER, name)
        b_acc, b_tau, b_classes, b_answers = summary(before)
        a_acc, a_tau, a_classes, a_answers = summary(after)
        lines.append({
            "dataset": dataset, "model": f"{encoder}+{attention}",
            "answers_before": b_answers, "acc_before": b_acc, "tau_g_before": round(b_tau, 3),
            "answers_after": a_answers, "acc_after": a_acc, "tau_g_after": round(a_tau, 3),
            "classes_predicted_after": a_classes,
            "budget_after": "the paper's" if after["budget"]["audit_limit"] is None else "reduced",
            "jw_run_acc": jw_accuracy, "jw_run_tau_g": jw_tau,
        })  # fmt: skip
    out = pathlib.Path(__file__).with_name("compare.csv")
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines)
    for line in lines:
        print(",".join(str(v) for v in line.values()))


if __name__ == "__main__":
    main()
