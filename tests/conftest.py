"""Strict test settings: rank promotion raises, warnings are errors (pyproject), seeded keys.

One compilation cache per test session: a fresh, empty folder made when the session starts,
shared by every test, by the xdist workers and by the commands the tests start as
subprocesses (through ``$ATTN_AUDIT_JAX_CACHE``), and deleted at the end. A program that
several tests build (the same tiny model, the same shapes) is compiled once per session; a
session never sees programs of an earlier one, so the suite measures a fresh machine.

Compilation is most of the suite's time (about 80% of it on a 2-core CPU, measured with
``jax.monitoring``), so the tests compile with cheaper XLA:CPU settings (``TEST_XLA_FLAGS``,
set before JAX starts and inherited by the commands the tests start): no LLVM optimisation
and XLA's classic loop emitters instead of its fusion emitters. On this suite's toy models
that compiles in about a third of the time and runs fast enough: 795 tests in 6.2 min
instead of 12.3 at the defaults. The programs compute the same functions (rounding aside,
which the tests' tolerances allow for). The engines' programs follow these flags too
(``batch_engine.compiler_options``: an optimisation level in ``$XLA_FLAGS`` wins over
``COMPILER_OPTIONS``): their compilation takes about 40% less CPU than at level 1.
"""

import gc
import os
import pathlib
import shutil
import tempfile

TEST_XLA_FLAGS = "--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{TEST_XLA_FLAGS} {os.environ.get('XLA_FLAGS', '')}".strip()

import jax  # noqa: E402 (after XLA_FLAGS: XLA reads them when JAX starts its backend)
import pytest  # noqa: E402

from experiments import _setup  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

REAL_DATA = os.environ.get("ATTN_AUDIT_DATA")
_SESSION_CACHE = "ATTN_AUDIT_TEST_SESSION_CACHE"


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        folder = tempfile.mkdtemp(prefix="attn_audit_test_cache_")
        os.environ[_SESSION_CACHE] = folder  # xdist workers inherit it
        config._attn_audit_session_cache = folder
    os.environ[_setup.CACHE_ENV_VAR] = os.environ[_SESSION_CACHE]
    _setup.enable_compilation_cache()


def pytest_unconfigure(config):
    folder = getattr(config, "_attn_audit_session_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Frees the compiled programs of each test module after it. XLA:CPU maps memory for
    every executable it keeps; an xdist worker that kept the whole suite's programs passed
    20,000 memory maps within 2 minutes of a run, and compiling segfaulted near the end of a
    run at the kernel's limit (``vm.max_map_count``, 65,530). The session's persistent cache
    keeps every program on disk for the next module that builds it."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def real_data_dir() -> pathlib.Path:
    """The real data folder, or a skip that says why."""
    if not REAL_DATA or not pathlib.Path(REAL_DATA).is_dir():
        pytest.skip("ATTN_AUDIT_DATA is not set to the folder of real data sets (../shared/data)")
    return pathlib.Path(REAL_DATA)
