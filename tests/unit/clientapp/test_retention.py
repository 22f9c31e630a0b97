"""Client state hygiene (issue 23): folders 0700, files 0600, the last K runs kept
within a size budget, the current run never removed."""

from __future__ import annotations

import os
import stat

import torch

from fedmuscle_flwr.clientapp.retention import prune, run_folders, state_bytes
from fedmuscle_flwr.clientapp.state import ClientStateStore


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_folders_0700_and_files_0600_whatever_the_umask(tmp_path):
    old = os.umask(0o000)  # the most permissive umask a user might have
    try:
        root = tmp_path / "state"
        store = ClientStateStore(root)
        store.save("run-a", 3, {"w": torch.zeros(2)})
        store.save("run-a", 3, {"w": torch.ones(2)})  # replaced in place
    finally:
        os.umask(old)
    path = store.path("run-a", 3)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(root) == 0o700
    assert not list(path.parent.glob("*.tmp"))


def _runs(root, sizes):
    store = ClientStateStore(root)
    for i, n in enumerate(sizes):
        store.save(f"run-{i}", 1, {"w": torch.zeros(n)})
        path = store.path(f"run-{i}", 1)
        os.utime(path, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))  # run-i newer
    return store


def test_keeps_the_newest_runs(tmp_path):
    _runs(tmp_path, [10] * 5)
    removed = prune(tmp_path, keep_runs=2, max_bytes=1e12)
    assert sorted(p.name for p in removed) == ["run-0", "run-1", "run-2"]
    assert [r.path.name for r in run_folders(tmp_path)] == ["run-4", "run-3"]


def test_never_removes_the_current_run_and_respects_bytes(tmp_path):
    _runs(tmp_path, [1000, 1000, 1000, 1000])
    one = run_folders(tmp_path)[0].nbytes
    # current = the oldest; budget for two folders
    removed = prune(tmp_path, keep_runs=3, max_bytes=2 * one, current="run-0")
    kept = {r.path.name for r in run_folders(tmp_path)}
    assert kept == {"run-0", "run-3"}
    assert {p.name for p in removed} == {"run-1", "run-2"}
    assert state_bytes(tmp_path) <= 2 * one


def test_symlinked_folders_are_not_followed_or_removed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    root = tmp_path / "state"
    _runs(root, [10, 10])
    (root / "link").symlink_to(outside)
    prune(root, keep_runs=1, max_bytes=1e12)
    assert (outside / "keep.txt").exists() and (root / "link").is_symlink()
    assert prune(tmp_path / "missing", keep_runs=1, max_bytes=1) == []


def test_files_renamed_or_pruned_by_another_process_meanwhile_are_skipped(tmp_path):
    """A simulation's Ray actors share the state folder: while one saves (a .tmp
    renamed over the state) and prunes, another's census must not fail on a
    file or folder listed a moment ago and gone since (seen at 64 clients)."""
    import threading

    store, stop = ClientStateStore(tmp_path), threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        i = 0
        try:
            while not stop.is_set():
                store.save("run-live", 1, {"w": torch.zeros(4)})
                store.save(f"run-old-{i}", 1, {"w": torch.zeros(4)})
                prune(tmp_path, keep_runs=2, max_bytes=1e12, current="run-live")
                i += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(1000):
            assert state_bytes(tmp_path) >= 0
            prune(tmp_path, keep_runs=2, max_bytes=1e12, current="run-live")
    finally:
        stop.set()
        worker.join()
    assert not errors
    assert len(run_folders(tmp_path)) <= 3  # live + the newest old one (+1 racing)
