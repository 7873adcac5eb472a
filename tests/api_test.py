"""attn_audit/__init__.py: the public API resolves, lazily, to the modules that define it."""

import subprocess
import sys

import pytest

import attn_audit


@pytest.mark.parametrize("name", attn_audit.__all__)
def test_every_public_name_resolves(name):
    value = getattr(attn_audit, name)
    assert value is not None
    assert name in dir(attn_audit)


def test_public_names_are_the_defining_modules_objects():
    from attn_audit.audits import rollout
    from attn_audit.training import run_folder

    assert attn_audit.rollout is rollout.rollout
    assert attn_audit.load_run is run_folder.load_run
    assert attn_audit.models is sys.modules["attn_audit.models"]


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'forward_pass'"):
        attn_audit.forward_pass  # noqa: B018


def test_importing_the_data_layer_does_not_import_training_or_plotting():
    heavy = "('orbax', 'matplotlib', 'attn_audit.training')"
    code = f"import sys, attn_audit.data; print(any(m.startswith({heavy}) for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
