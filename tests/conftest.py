"""Strict test settings: rank promotion raises, warnings are errors (pyproject), seeded keys."""

import os
import pathlib

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

REAL_DATA = os.environ.get("ATTN_AUDIT_DATA")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def real_data_dir() -> pathlib.Path:
    """The real data folder, or a skip that says why."""
    if not REAL_DATA or not pathlib.Path(REAL_DATA).is_dir():
        pytest.skip("ATTN_AUDIT_DATA is not set to the folder of real data sets (../shared/data)")
    return pathlib.Path(REAL_DATA)
