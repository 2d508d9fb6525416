"""Fixtures of the campaign tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from campaign_harness import dispose_all


@pytest.fixture(autouse=True)
def _dispose_campaign_services() -> Iterator[None]:
    """Every Services a test built is closed (no pooled connection outlives the test)."""
    yield
    dispose_all()
