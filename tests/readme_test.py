"""The README's Python example runs as written."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_own_model_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "BatchAuditor" in b)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    results = namespace["results"]
    assert results["loo"].shape == (2, 6) and results["gradient"].shape == (2, 6)
    assert np.all(results["adversarial_max_jsd"] <= np.log(2) + 1e-6)
    assert capsys.readouterr().out
