"""The errors a stage raises on bad input (config, checkpoints, data, devices): the CLI
prints them as one clear line instead of a traceback."""

from __future__ import annotations

from ttt_cli.config import RunConfigError
from ttt_cli.data_feed import DataSetupError
from ttt_cli.run_lock import RunLockedError
from ttt_cli.runtime import RuntimeSetupError
from ttt_cli.warmstart import WarmStartError
from ttt_data.errors import DataError
from ttt_ledger import LedgerError
from ttt_model.checkpoint import CheckpointError
from ttt_model.config import ConfigError

BAD_INPUT_ERRORS: tuple[type[Exception], ...] = (
    RunConfigError, ConfigError, CheckpointError, WarmStartError, DataError, DataSetupError,
    RuntimeSetupError, LedgerError, RunLockedError)
