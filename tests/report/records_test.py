"""attn_audit.report.records: JSON-lines round trip (NaN as null), malformed lines named."""

import copy
import re

import numpy as np
import pytest

from attn_audit import report


def test_records_round_trip_with_nan_as_null(records, tmp_path):
    path = tmp_path / "records.jsonl"
    written = copy.deepcopy(records[:3])
    written[0]["tau_gradient"] = float("nan")
    written[1]["attention"] = np.array([0.5, np.nan], dtype=np.float32)
    written[1]["max_attention"] = np.float32(0.5)
    written[2]["index"] = np.int64(2)
    assert report.write_records(path, written) == path
    read = report.read_records(path)
    assert read[0]["tau_gradient"] is None
    assert read[1]["attention"] == [0.5, None]
    assert type(read[1]["max_attention"]) is float and type(read[2]["index"]) is int
    expected = copy.deepcopy(records[:3])
    expected[0]["tau_gradient"] = None
    expected[1]["attention"], expected[1]["max_attention"] = [0.5, None], 0.5
    assert read == expected
    assert report.read_records(report.write_records(path, records)) == records


@pytest.mark.parametrize("bad_line", ['{"id": "b", "index": ', "[1, 2]"])
def test_malformed_line_names_file_and_line(tmp_path, bad_line):
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": "a", "index": 0}\n\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(report.RecordsFormatError, match=re.escape(f"{path}:3:")):
        report.read_records(path)
    skipped = []  # a reader that shows what it can (the report page) keeps the rest
    assert report.read_records(path, skipped=skipped) == [{"id": "a", "index": 0}]
    assert len(skipped) == 1 and skipped[0].startswith(f"{path}:3: line 3 ")
    assert skipped[0].endswith("That record is left out.")
