"""Results files: CSV tables and Markdown sections that commands rewrite in place."""

import csv
import pathlib


def write_csv(path: pathlib.Path, rows: list[dict]) -> pathlib.Path:
    """Writes ``rows`` as CSV, the union of their keys as columns; missing cells stay empty."""
    columns = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def replace_section(path: pathlib.Path, key: str, text: str) -> None:
    """Puts ``text`` between ``<!-- key start -->`` and ``<!-- key end -->`` in ``path``."""
    start, end = f"<!-- {key} start -->", f"<!-- {key} end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    content = path.read_text(encoding="utf-8") if path.exists() else "# Results\n\n"
    if start in content and end in content:
        before, rest = content.split(start, 1)
        _, after = rest.split(end, 1)
        content = before + block + after.lstrip("\n")
    else:
        content = content.rstrip("\n") + "\n\n" + block
    path.write_text(content, encoding="utf-8")
