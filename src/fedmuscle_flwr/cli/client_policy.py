"""``fedmuscle client``'s policy options: ``--policy``, ``--prune``, ``--no-warm``.

The client policy (``config/policy.py``) is enforced by the ClientApp; here the
command line resolves it once (the profile's ``[policy]``, replaced by a
``--policy FILE``), logs it, prunes old runs' state on request and refuses to
run Flower's stock ClientApp (the server's code) unless told to.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fedmuscle_flwr.clientapp.retention import prune
from fedmuscle_flwr.clientapp.state import default_state_dir
from fedmuscle_flwr.config.files import load_policy
from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.config.profile import ClientProfile

log = logging.getLogger("fedmuscle_flwr")

#: why ``--no-warm`` needs ``--trust-server-code``
NO_WARM_REFUSED = (
    "--no-warm runs Flower's stock ClientApp process, which installs and imports "
    "the server's app bundle (server code on this machine, next to the private "
    "data and the node's key); add --trust-server-code to accept that, or leave "
    "out --no-warm: the resident ClientApp runs only this machine's installed "
    "fedmuscle-flwr"
)


def resolve_policy(profile: ClientProfile, policy_file: Path | None) -> ClientPolicy:
    """The policy this client enforces: ``--policy FILE`` or the profile's."""
    return load_policy(policy_file) if policy_file is not None else profile.policy


def prune_now(policy: ClientPolicy, state_dir: Path | None) -> list[Path]:
    """``--prune``: keep the last ``keep-runs`` runs within ``state-mb``; log it."""
    root = (state_dir or default_state_dir()).expanduser()
    caps = policy.caps
    removed = prune(root, caps.keep_runs, caps.state_mb * 2**20)
    log.info(
        "pruned %d old run folder(s) under %s (keep-runs=%d, state-mb=%g)",
        len(removed),
        root,
        caps.keep_runs,
        caps.state_mb,
    )
    return removed


def stock_allowed(warm: bool, trust_server_code: bool) -> bool:
    """Whether this client may start (``--no-warm`` needs ``--trust-server-code``)."""
    if warm:
        return True
    if trust_server_code:
        log.warning("--trust-server-code: the server's app bundle will run here")
    return trust_server_code
