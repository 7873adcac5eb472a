"""Seeded audit records shared by the report tests (the helpers are in tests/_fixtures.py)."""

import pytest

from tests._fixtures import make_records


@pytest.fixture(scope="module")
def records():
    return make_records()
