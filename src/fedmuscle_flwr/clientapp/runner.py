"""One message on the client: build or reuse the runtime, run the phase, save.

:func:`run_phase` is what the ClientApp (``clientapp/app.py``) calls per message;
a :class:`RuntimeCache` keeps runtimes warm across messages (``fedmuscle
client``'s long-lived executor). :func:`seeded_torch` makes every phase
repeatable whatever ran before it in the process. No Flower here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from fedmuscle_flwr.clientapp.guard import (
    admit,
    admit_public,
    admit_reply,
    admit_state,
)
from fedmuscle_flwr.clientapp.runtime import ClientRuntime
from fedmuscle_flwr.clientapp.state import (
    ClientStateStore,
    Stamp,
    StampedCache,
    safe_key,
)
from fedmuscle_flwr.config.profile import ClientProfile
from fedmuscle_flwr.data.fingerprint import check_fingerprint
from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.method.seeds import STREAM_TORCH, client_seed, rng_for
from fedmuscle_flwr.wire.messages import Instruction, Reply
from fedmuscle_flwr.wire.refusal import Refusal

log = logging.getLogger(__name__)


class RuntimeCache:
    """Live :class:`ClientRuntime` objects kept across messages, per (run, client).

    A cached runtime is reused only for the same profile and run config, and
    only while the client's state file is still the one it saved last (the
    same :class:`~fedmuscle_flwr.clientapp.state.StampedCache` rule as the
    state store's): if another process wrote it, the state is reloaded.
    """

    def __init__(self, size: int = 2) -> None:
        self._live: StampedCache[tuple[str, int], ClientRuntime] = StampedCache(size)

    @property
    def size(self) -> int:
        """How many runtimes are kept."""
        return self._live.size

    def get(
        self,
        key: tuple[str, int],
        profile: ClientProfile,
        ins: Instruction,
        stamp: Stamp | None,
    ) -> ClientRuntime | None:
        """The warm runtime for ``key``, or None (then build one)."""
        runtime = self._live.get(key, stamp)
        if runtime is not None and (
            runtime.profile != profile or runtime.run != ins.run
        ):
            self._live.drop(key)
            return None
        return runtime

    def put(
        self, key: tuple[str, int], runtime: ClientRuntime, stamp: Stamp | None
    ) -> None:
        """Keep ``runtime`` with the stamp of its state file now."""
        self._live.put(key, runtime, stamp)


def run_phase(
    kind: str,
    ins: Instruction,
    profile: ClientProfile,
    store: ClientStateStore,
    run_key: str,
    node_id: int,
    cache: RuntimeCache | None = None,
) -> Reply | Refusal:
    """Build (or reuse) the runtime, restore state, run phase ``kind``, save state.

    The profile's policy is applied around it (``clientapp/guard.py``): a
    refused instruction returns the :class:`Refusal` instead of a reply.

    The state is keyed by run (``run_key`` plus the run's ``checkpoint.uid``,
    which a resumed run keeps) and by the client's profile, not by ``node_id``:
    Flower gives a SuperNode a new id when it or the SuperLink restarts, and a
    resumed run must find the states its clients saved before. With a
    ``cache`` the runtime of the previous message is reused when its state is
    still the saved one, so the model is built once per run; the state is saved
    after every phase all the same (a restarted client resumes from it).

    A new runtime first compares its public set with the fingerprint the server
    announced (:class:`~fedmuscle_flwr.data.fingerprint.PublicSetMismatchError`:
    one line, both fingerprints, where this client's files came from).
    """
    phase = Phase(kind)
    ins, refusal = admit(phase, ins, profile.policy, profile.public is not None)
    if refusal is not None:  # before any data is read or model built
        return refusal
    key, slot = state_key(ins, run_key), client_seed(profile)
    runtime = None
    if cache is not None:
        runtime = cache.get((key, slot), profile, ins, store.stamp(key, slot))
    if runtime is None:
        runtime = ClientRuntime.build(profile, ins.run, ins.algorithm)
        if ins.public_fingerprint:  # before any training: the server's public set?
            who = f"client {profile.name!r}"
            check_fingerprint(runtime.public, ins.public_fingerprint, who)
        if cache is not None:  # a warm client: once per run, worth a line
            log.info(
                "built model %s for run %s (%d parameters)",
                profile.model.backbone,
                key,
                sum(p.numel() for p in runtime.model.parameters()),
            )
        saved = store.load(key, slot)
        if saved is not None:
            runtime.load_state_dict(saved)
    refusal = admit_public(runtime, profile.policy)
    if (
        refusal is None
        and phase is not Phase.EVALUATE
        and store.stamp(key, slot) is None
    ):
        refusal = admit_state(store.root, safe_key(key), profile.policy)
    if refusal is not None:
        return refusal
    with seeded_torch(ins, profile, phase, runtime.device):
        reply = PHASES[phase](runtime, ins)
    if phase is not Phase.EVALUATE:
        store.save(key, slot, runtime.state_dict())
    if cache is not None:
        cache.put((key, slot), runtime, store.stamp(key, slot))
    return admit_reply(reply, ins.run.muscle.precision, profile.policy) or reply


def state_key(ins: Instruction, run_key: str) -> str:
    """The run's state key: ``run_key`` plus the run's ``checkpoint.uid``."""
    uid = ins.run.checkpoint.uid
    return f"{run_key}-{uid}" if uid else run_key


@contextmanager
def seeded_torch(
    ins: Instruction, profile: ClientProfile, phase: Phase, device: torch.device
) -> Iterator[None]:
    """Torch's RNG (dropout, drop-connect) seeded per (run, client, round, step, phase).

    Without it a client's dropout masks depend on which other clients ran
    before it in the same process, so even ``local`` runs were not repeatable.
    Torch's CPU thread count is set to the run's ``client-threads`` too: a
    kernel's summation order depends on it, and phase 2 amplifies the last-bit
    differences (Ray runs each simulated client with one thread, the in-process
    engine used all cores: probe similarity 0.093 vs 0.102 after one round of
    ``--preset tiny``). The caller's RNG state and thread count are restored.
    """
    cuda = [device.index or 0] if device.type == "cuda" else []
    key = (client_seed(profile), ins.server_round, ins.step, phase.torch_key)
    seed = int(rng_for(ins.run.seed, STREAM_TORCH, *key).integers(2**62))
    threads = torch.get_num_threads()
    if ins.run.client_threads:
        torch.set_num_threads(ins.run.client_threads)
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


PHASES = {
    Phase.TRAIN: ClientRuntime.train,
    Phase.ALIGN: ClientRuntime.align,
    Phase.EVALUATE: ClientRuntime.evaluate,
}
