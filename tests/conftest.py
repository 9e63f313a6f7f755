"""Fixtures shared by every tier; e2e fixtures live in tests/e2e/conftest.py."""

import sys
from pathlib import Path

# `tests.support` is imported as a package from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
