"""A benchmark's results file: the generated report, then hand-written remarks that a new run
keeps."""

import pathlib

REMARKS_MARKER = "<!-- Hand-written remarks below this line are kept when the benchmark runs. -->"


def write_results(path: pathlib.Path, report: str) -> None:
    """Writes ``report``, keeping the remarks below ``REMARKS_MARKER`` of an earlier file."""
    path = pathlib.Path(path)
    remarks = ""
    if path.exists() and REMARKS_MARKER in path.read_text():
        remarks = path.read_text().split(REMARKS_MARKER, 1)[1].lstrip("\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{report}\n{REMARKS_MARKER}\n\n{remarks}")
