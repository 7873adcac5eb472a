"""Hypothesis profiles for the fuzz suite, and a count of the cases it ran.

``ci`` (the default): few, derandomised examples, so the folder runs in seconds with the
rest of the suite. ``fuzz`` (``HYPOTHESIS_PROFILE=fuzz``, as ``make fuzz`` sets it):
random examples, enough that the folder runs over 10,000 cases. ``ci`` keeps no example
database; ``fuzz`` keeps its failures in ``.hypothesis/`` to replay them first on the next
run. Hypothesis also caches constants there under either profile: the folder is git-ignored.
"""

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV_VAR = "HYPOTHESIS_PROFILE"
# 12 properties × 1,000 examples (10 where MiniLM's tokenizer is not installed): over
# 10,000 cases under ``fuzz``, about 2 minutes on 2 cores.
FUZZ_EXAMPLES = 1000

settings.register_profile(
    "ci",
    max_examples=50,
    derandomize=True,
    database=None,
    deadline=None,  # a shared 2-core machine: timing would make the suite flaky
    print_blob=True,
)
settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get(PROFILE_ENV_VAR, "ci"))

_cases = {"count": 0}


def _counted(inner_test):
    def run_one_case(*args, **kwargs):
        _cases["count"] += 1
        return inner_test(*args, **kwargs)

    run_one_case._counted = True
    return run_one_case


def pytest_collection_modifyitems(items):
    """Counts every case Hypothesis runs (generated, replayed and shrunk ones) through the
    hook Hypothesis offers for wrapping the test body (``test.hypothesis.inner_test``)."""
    for item in items:
        hypothesis_handle = getattr(getattr(item, "obj", None), "hypothesis", None)
        if hypothesis_handle is not None and not hasattr(hypothesis_handle.inner_test, "_counted"):
            hypothesis_handle.inner_test = _counted(hypothesis_handle.inner_test)


def pytest_terminal_summary(terminalreporter):
    if _cases["count"]:
        profile = os.environ.get(PROFILE_ENV_VAR, "ci")
        terminalreporter.write_line(
            f"fuzz: Hypothesis ran {_cases['count']} cases (profile {profile!r}; explicit "
            "examples, shrinking steps and draws rejected as invalid included)"
        )
