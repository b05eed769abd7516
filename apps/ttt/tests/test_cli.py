import pytest

from ttt_cli.main import main


def test_help_lists_no_unknown_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
