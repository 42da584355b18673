"""Fixtures shared by the unit and end-to-end tests (those of the e2e tests alone are in
tests/e2e/conftest.py; plain helpers in tests/support.py)."""

from __future__ import annotations

import pytest

from tests.support import TEST_POSTGRES_URL, postgres_unavailable


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL (TOLLGATE_TEST_POSTGRES_URL); skips the test when it does not answer."""
    reason = postgres_unavailable(TEST_POSTGRES_URL)
    if reason:
        pytest.skip(reason)
    return TEST_POSTGRES_URL
