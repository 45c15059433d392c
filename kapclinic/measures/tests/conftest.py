from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """The outcomes dashboard is cached in the process-wide cache: no test sees another's entries."""
    cache.clear()
    yield
    cache.clear()
