"""The fault-injection suite (`nox -s faults`): break runs, checkpoints, stores, corpora and
configs on purpose through the `ttt` command, and check that nothing already written is lost
and that each fault ends in a resume or in a one-line refusal.

It reuses the app tests' tiny stage (apps/ttt/tests/ttt_app_testlib.py): one home for the
tiny store and the overrides of a tiny stage.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "apps" / "ttt" / "tests"))

from ttt_app_testlib import store, tokenizer  # noqa: E402, F401  (session fixtures)
