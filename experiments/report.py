r"""(Re)builds a run's report page from its records, without recomputing anything.

  python -m experiments.report --workdir=runs/sst_lstm_tanh [--split=test]

Writes ``WORKDIR/report.html`` (``report_<split>.html`` for another split): one
self-contained page (no network, opens from ``file://``) with the overview of whatever the
run holds for the split (audit, explanations, faithfulness, attention views) and a
browser over all its instances (``attn_audit/report/page.py``). ``experiments.audit``,
``explain`` and ``faithfulness`` write it too when they finish; this command rebuilds it,
e.g. while a run is still going (the page says what is missing).
"""

import sys

from absl import app, flags

from attn_audit.report.page import write_report

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained model.", required=True)
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "Split to report.")


def main(argv):
    del argv
    try:
        path = write_report(_WORKDIR.value, _SPLIT.value)
    except (FileNotFoundError, NotADirectoryError) as error:
        sys.exit(f"error: {error}")
    print(f"Report: {path.resolve()}")


if __name__ == "__main__":
    app.run(main)
