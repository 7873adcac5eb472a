"""A benchmark's results file: the generated report, then hand-written remarks that a new run
keeps."""

import os
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


REPO = pathlib.Path(__file__).resolve().parents[1]


def command_line(module: str, holders) -> str:
    """``python -m <module>`` and the flags given (not the defaults); an absolute path is
    written relative to the repository, so no machine's folders end up in a results file."""
    parts = [f"python -m {module}"]
    for holder in holders:  # absl FlagHolders
        if not holder.present:
            continue
        value = holder.value
        if isinstance(value, str) and pathlib.Path(value).is_absolute():
            parts.append(f"--{holder.name}={os.path.relpath(value, REPO)}")
        else:
            parts.append(holder.serialize())
    return " ".join(parts)
