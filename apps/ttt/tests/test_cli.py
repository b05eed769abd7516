import pytest

from ttt_cli.main import main


def test_help_lists_no_unknown_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0


def test_modules_moved_to_the_runner_still_import_by_their_old_names():
    import importlib
    import warnings

    import ttt_train.stage

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("ttt_cli.stage")
    assert old is ttt_train.stage
    assert any("ttt_cli.stage moved to ttt_train.stage" in str(w.message) for w in caught)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("ttt_cli.no_such_module")


def test_the_old_pilot_assets_entry_point_runs(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-W", "always", "-m", "ttt_cli.pilot_assets",
                           "--help"], capture_output=True, text=True, check=True)
    assert "--out" in done.stdout and "use python -m ttt_train.pilot_assets" in done.stderr
