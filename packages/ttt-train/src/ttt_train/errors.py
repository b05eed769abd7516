"""The errors a stage raises on bad input (config, checkpoints, data, devices): the CLI
prints them as one clear line instead of a traceback."""

from __future__ import annotations

from ttt_data.errors import DataError
from ttt_ledger import LedgerError
from ttt_model.checkpoint import CheckpointError
from ttt_model.config import ConfigError
from ttt_train.config import RunConfigError
from ttt_train.data_feed import DataSetupError
from ttt_train.run_lock import RunLockedError
from ttt_train.runtime import RuntimeSetupError
from ttt_train.warmstart import WarmStartError

BAD_INPUT_ERRORS: tuple[type[Exception], ...] = (
    RunConfigError, ConfigError, CheckpointError, WarmStartError, DataError, DataSetupError,
    RuntimeSetupError, LedgerError, RunLockedError)
