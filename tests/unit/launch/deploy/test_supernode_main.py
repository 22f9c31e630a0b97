"""The SuperNode launcher (launch/deploy/supernode_main.py): its options.

The adjustments it applies are tested against Flower in
``tests/unit/wire/test_flower_compat.py``.
"""

import subprocess
import sys

import pytest

from fedmuscle_flwr.launch.deploy import supernode_main


@pytest.mark.parametrize("argv", [["--idle-s", "x", "--"], ["--bogus", "--"]])
def test_bad_options_exit(argv):
    with pytest.raises(SystemExit):
        supernode_main.main(argv)


def test_it_runs_flowers_supernode_with_flowers_arguments():
    """Flower's own ``flower-supernode`` answers ``--help`` behind our options."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            supernode_main.__name__,
            "--idle-s",
            "0.1",
            "--",
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--superlink" in done.stdout and "--isolation" in done.stdout
