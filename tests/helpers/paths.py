"""Where things are, for every test wherever it sits under tests/."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
SHARED = REPO.parent / "shared"
SHARED_LIBRARIES = SHARED / "arduino" / "libraries"
