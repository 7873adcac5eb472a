"""``report.html``: one self-contained page per run folder and split.

The page gathers whatever the run holds for the split (``run_contents.read_run``): an
overview drawn here (``page_overview``) and an instance browser over the whole split, whose
data are packed by ``page_data`` and read by ``page_assets/page.js``. Script, style, data
and figures are inside the file: it opens from ``file://`` with no network and no server.

The page of the test split is ``<workdir>/report.html``; of another split,
``<workdir>/report_<split>.html``.
"""

import html
import os
import pathlib
import time

from attn_audit.report.page_data import pack_instances
from attn_audit.report.page_overview import embedded_json, overview_html, page_title
from attn_audit.report.run_contents import RunContents, read_run

ASSETS = pathlib.Path(__file__).parent / "page_assets"


def report_path(workdir, split: str = "test") -> pathlib.Path:
    """Where the page of ``split`` goes in ``workdir``."""
    name = "report.html" if split == "test" else f"report_{split}.html"
    return pathlib.Path(workdir) / name


def render_page(contents: RunContents) -> str:
    """The whole page of ``contents`` as HTML text."""
    started = time.perf_counter()
    packed = pack_instances(contents)
    meta = {
        **packed.meta,
        "problems": contents.problems,
        "split": contents.split,
        "pack_seconds": round(time.perf_counter() - started, 3),
    }
    title = page_title(contents)
    blobs = "".join(
        f'<script type="application/octet-stream" id="blob-{name}">{text}</script>'
        for name, text in packed.blobs.items()
    )
    style = (ASSETS / "page.css").read_text(encoding="utf-8")
    script = (ASSETS / "page.js").read_text(encoding="utf-8")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>"
        f'<header><h1>{html.escape(title)}</h1><nav><a href="#verdict">verdict</a> · '
        '<a href="#audit">audit</a> · <a href="#faithfulness">faithfulness</a> · '
        '<a href="#browser">instances</a></nav></header><main>'
        + overview_html(contents)
        + '<section id="browser"><h2>Instances</h2>'
        '<p id="browser-status" class="status">Loading the instances…</p>'
        '<div id="controls"></div><div id="table-wrap"></div><div id="pager"></div>'
        '<div id="instance" hidden></div></section></main>'
        f'<script type="application/json" id="meta">{embedded_json(meta)}</script>'
        f"{blobs}<script>{script}</script></body></html>\n"
    )


def write_report(workdir, split: str = "test") -> pathlib.Path:
    """Reads ``workdir``'s results for ``split`` and writes its page, atomically.

    Returns:
      The page's path (``report_path``).

    Raises:
      FileNotFoundError: the run folder holds nothing of ``split`` (``read_run``).
    """
    contents = read_run(workdir, split)
    path = report_path(workdir, split)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(render_page(contents), encoding="utf-8")
    os.replace(partial, path)
    return path
