from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    """The documents storage in a fresh folder, so a test can see every file written (or not)."""
    root = tmp_path / "documents"
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": root, "base_url": None},
        },
    }
    return root


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
