"""Reports of audit records: per-instance records files, JW Table 2 summaries, figures and the
run's report page (``write_report``: one self-contained ``report.html``).

Pure numpy/matplotlib/json (no jax), so it imports fast for reading results.
"""

from attn_audit.report import figures
from attn_audit.report.fields import MAX_ATTENTION_BINS, MAX_ATTENTION_EDGES
from attn_audit.report.figures import (
    adversarial_histogram,
    adversarial_violin,
    attention_heatmaps,
    permutation_violin,
    tau_histograms,
    write_all,
)
from attn_audit.report.page import report_path, write_report
from attn_audit.report.paper import (
    JW_CODE_ACCURACY,
    JW_CODE_MEAN_TAU_G,
    JW_CODE_TAU_G,
    JW_MEAN_TAU_G,
    JW_TABLE2,
    mean_tau_g,
    paper_row,
)
from attn_audit.report.records import (
    RecordsFormatError,
    read_records,
    summary_json,
    write_records,
)
from attn_audit.report.run_contents import read_run
from attn_audit.report.summary import format_tau_cell, summarize, summary_markdown

__all__ = [
    "JW_CODE_ACCURACY",
    "JW_CODE_MEAN_TAU_G",
    "JW_CODE_TAU_G",
    "JW_MEAN_TAU_G",
    "JW_TABLE2",
    "MAX_ATTENTION_BINS",
    "MAX_ATTENTION_EDGES",
    "RecordsFormatError",
    "adversarial_histogram",
    "adversarial_violin",
    "attention_heatmaps",
    "figures",
    "format_tau_cell",
    "mean_tau_g",
    "paper_row",
    "permutation_violin",
    "read_records",
    "read_run",
    "report_path",
    "summary_json",
    "summarize",
    "summary_markdown",
    "tau_histograms",
    "write_all",
    "write_records",
    "write_report",
]
