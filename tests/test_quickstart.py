"""The README's quickstart, followed verbatim: its commands run in a fresh folder, in
order, and leave what the README says they leave (a trained checkpoint, a run
directory, generated text, a report)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands(readme: str) -> list[list[str]]:
    """The synthetic-corpus command of the quickstart's text, then each command of its
    bash block (continuation lines joined), `uv run` dropped: the test runs inside the
    environment uv would run them in."""
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    synth = re.search(r"`uv run (ttt data synth [^`]+)`", section).group(1)
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    lines = [synth, *(line.strip() for line in block.splitlines() if line.strip())]
    return [shlex.split(line.removeprefix("uv run ")) for line in lines]


def test_the_quickstart_runs_as_written(tmp_path):
    commands = quickstart_commands((ROOT / "README.md").read_text())
    assert [c[:2] for c in commands] == [["ttt", "data"]] * 3 + [
        ["ttt", "train"], ["ttt", "generate"], ["ttt", "report"]]
    ttt = shutil.which("ttt") or str(Path(sys.executable).with_name("ttt"))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    outputs = []
    for command in commands:
        done = subprocess.run([ttt, *command[1:]], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=900)
        assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    run = tmp_path / "experiments" / "quickstart" / "tiny-e2e"
    for name in ("config_resolved.yaml", "metrics.jsonl", "train.log", "ledger_record.json"):
        assert (run / name).is_file(), name
    assert any((tmp_path / "checkpoints" / "quickstart" / "tiny-e2e").iterdir())
    generated = outputs[4]
    assert generated.strip(), "ttt generate printed no text"
    assert "tiny-e2e" in outputs[5]
