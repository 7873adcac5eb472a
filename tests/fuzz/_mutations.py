"""Hypothesis strategies that damage a file the way disks, downloads and editors do.

``mutated(original)`` draws 1–3 of: a flipped bit, a truncation, a duplicated, deleted or
swapped line, inserted bytes or text, and a re-encoding of the whole file (Latin-1,
Windows-1252, UTF-16, UTF-32, UTF-8 with a byte-order mark).
"""

import gzip
import io
import tarfile

from hypothesis import strategies as st

ENCODINGS = ("latin-1", "cp1252", "utf-16", "utf-16-le", "utf-32", "utf-8-sig")
MUTATIONS = (
    "flip_bit",
    "truncate",
    "duplicate_line",
    "delete_line",
    "swap_lines",
    "insert_bytes",
    "insert_text",
    "reencode",
)
# Characters that tokenizers and parsers trip on: controls, separators, right-to-left
# text and marks, combining marks, zero-width and no-break spaces, quotes of other encodings.
AWKWARD_CHARACTERS = st.sampled_from(
    list("\x00\x01\x1b\x7f\x85\xa0\xad\u200b\u200e\u200f\u202e\u2028\u2029\ufeff\ufffd")
    + list("\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u0301\u0307\u2018\u2019")
    + list("\t\r\n ()\"',\\#;:0123456789")
)


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


@st.composite
def mutated(draw, original: bytes, max_mutations: int = 3) -> bytes:
    """``original`` with 1 to ``max_mutations`` random mutations applied in turn."""
    data = bytes(original)
    for _ in range(draw(st.integers(1, max_mutations))):
        kind = draw(st.sampled_from(MUTATIONS))
        if kind == "flip_bit" and data:
            position = draw(st.integers(0, len(data) - 1))
            flipped = data[position] ^ (1 << draw(st.integers(0, 7)))
            data = data[:position] + bytes([flipped]) + data[position + 1 :]
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind in ("duplicate_line", "delete_line", "swap_lines"):
            lines = _lines(data)
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate_line":
                lines.insert(i, lines[i])
            elif kind == "delete_line":
                del lines[i]
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            data = b"".join(lines)
        elif kind in ("insert_bytes", "insert_text"):
            position = draw(st.integers(0, len(data)))
            if kind == "insert_bytes":
                inserted = draw(st.binary(min_size=1, max_size=8))
            else:
                alphabet = st.one_of(AWKWARD_CHARACTERS, st.characters())
                inserted = draw(st.text(alphabet, min_size=1, max_size=12)).encode(
                    "utf-8", errors="surrogatepass"
                )
            data = data[:position] + inserted + data[position:]
        elif kind == "reencode":
            text = data.decode("utf-8", errors="replace")
            data = text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    return data


def tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    """A gzip-compressed tar archive of ``(name, content)`` members, in that order."""
    return gzip.compress(tar_bytes(members), compresslevel=1, mtime=0)


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@st.composite
def mutated_archive(draw, files: dict[str, bytes]) -> bytes:
    """A ``.tar.gz`` of ``files`` (name → content) damaged at one of four layers: one
    member's content, the member list (one deleted, duplicated or renamed), the tar
    stream, or the gzip stream."""
    members = list(files.items())
    layer = draw(st.sampled_from(("member", "members", "tar", "gzip")))
    if layer == "member":
        i = draw(st.integers(0, len(members) - 1))
        members[i] = (members[i][0], draw(mutated(members[i][1])))
    elif layer == "members":
        i = draw(st.integers(0, len(members) - 1))
        change = draw(st.sampled_from(("delete", "duplicate", "rename")))
        if change == "delete":
            del members[i]
        elif change == "duplicate":
            members.insert(draw(st.integers(0, len(members))), members[i])
        else:
            name = draw(mutated(members[i][0].encode())).decode("utf-8", errors="replace")
            members[i] = (name or "renamed", members[i][1])
    elif layer == "tar":
        return gzip.compress(draw(mutated(tar_bytes(members))), compresslevel=1, mtime=0)
    else:
        return draw(mutated(tar_gz(members)))
    return tar_gz(members)
