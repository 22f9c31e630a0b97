"""Flower's programs are found next to the running interpreter, PATH or not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fedmuscle_flwr.launch.deploy.processes import flower_env, flower_program


def test_flower_programs_run_without_the_venv_on_path(tmp_path, monkeypatch):
    # Prepare: a PATH without this interpreter's bin/ (a venv not activated)
    bindir = Path(sys.executable).parent
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    # Execute
    env = flower_env(tmp_path / "home")
    program = flower_program("flwr")
    done = subprocess.run(
        [program, "--version"], env=env, capture_output=True, text=True, timeout=120
    )
    # Assert: our call and Flower's own spawns (PATH) both find this install
    assert program == str(bindir / "flwr")
    assert env["PATH"].split(":")[0] == str(bindir)
    assert done.returncode == 0 and "1.39.0" in done.stdout
    assert flower_program("no-such-flower-program") == "no-such-flower-program"
