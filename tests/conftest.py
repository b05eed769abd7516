"""The cross-package tests reuse the app tests' tiny stage (apps/ttt/tests/ttt_app_testlib.py):
one home for the tiny store and the overrides of a tiny stage."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps" / "ttt" / "tests"))

from ttt_app_testlib import store, tokenizer  # noqa: E402, F401  (session fixtures)
