"""Unit tests do no I/O: asking for a server here is a mistake, said at once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def azurite() -> str:
    """Refuse: tests that need Table Storage belong in tests/integration."""
    pytest.fail("tests/unit starts no server: move this test to tests/integration", pytrace=False)


@pytest.fixture
def fhir_server() -> None:
    """Refuse: tests that need a provider belong in tests/integration."""
    pytest.fail("tests/unit starts no server: move this test to tests/integration", pytrace=False)
