"""Deprecated entry point, kept so that `python -m ttt_cli.pilot_assets` still works: the
pilot's assets are built by `python -m ttt_train.pilot_assets` now."""

from __future__ import annotations

import sys
import warnings

from ttt_train.pilot_assets import main

if __name__ == "__main__":
    warnings.warn("python -m ttt_cli.pilot_assets is deprecated: use "
                  "python -m ttt_train.pilot_assets", DeprecationWarning, stacklevel=1)
    sys.exit(main())
