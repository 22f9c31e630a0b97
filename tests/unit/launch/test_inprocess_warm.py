"""The in-process engine keeps client runtimes warm under per-step sync only.

Per-step synchronisation sends every client a message per step; building each
client's model for each of them made the paper's protocol several times slower
in-process (docs/results.md §7d). A warm runtime gives the cold results
(tests/unit/clientapp/test_runtime_cache.py); here: when it is used, and that
it is switched off after the run, also when the run fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedmuscle_flwr.clientapp import app as client_module
from fedmuscle_flwr.clientapp.runner import RuntimeCache
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.launch import inprocess


def _seen(monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> list[Any]:
    seen: list[Any] = []

    def serve(grid: Any, run: RunConfig) -> Path:
        seen.append(client_module._warm)
        if fail:
            raise RuntimeError("the run failed")
        return Path("done")

    monkeypatch.setattr(inprocess, "serve", serve)
    return seen


@pytest.mark.parametrize(("sync", "warm"), [("per-step", True), ("per-round", False)])
def test_runtimes_are_kept_warm_under_per_step_sync_only(
    sync: str, warm: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _seen(monkeypatch)
    run = RunConfig.from_flat({"muscle.sync": sync})
    assert inprocess.run_inprocess(run) == Path("done")
    assert isinstance(seen[0], RuntimeCache) is warm
    if warm:  # one runtime per client of the roster
        assert seen[0].size == len(inprocess.load_roster(run.federation.roster))
    assert client_module._warm is None


def test_the_cache_is_dropped_when_the_run_fails(monkeypatch: pytest.MonkeyPatch):
    seen = _seen(monkeypatch, fail=True)
    with pytest.raises(RuntimeError, match="failed"):
        inprocess.run_inprocess(RunConfig.from_flat({"muscle.sync": "per-step"}))
    assert isinstance(seen[0], RuntimeCache)
    assert client_module._warm is None
