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


def test_flax_example_runs_and_audits_the_model_as_written():
    import jax

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "aa.flax_model" in b)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    results, module = namespace["flax_results"], namespace["module"]
    assert results["loo"].shape == (2, 6) and results["gradient"].shape == (2, 6)
    # The audited model is the user's: its predictions are plain module.apply's.
    plain = jax.nn.softmax(module.apply(namespace["params"], namespace["ids"]))
    np.testing.assert_allclose(results["probabilities"], plain, atol=1e-6)
