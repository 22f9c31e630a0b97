"""Every adjustment this project makes to Flower's internals, in one place.

Flower 1.39.0 has no switch for any of these; each one below is

* named (:data:`ADJUSTMENTS`), and can be switched off: the env var
  ``FEDMUSCLE_FLOWER_ADJUSTMENTS_OFF`` holds a comma-separated list of names, or
  ``all`` (it is inherited by every process Flower starts, the ServerApp
  included); an unknown name is an error;
* guarded by ONE version pin (:data:`FLWR_VERSION`) plus a check of the source
  it relies on (``*_problem``); where either fails, Flower runs unchanged and a
  warning says why;
* tested against the installed Flower (``tests/unit/wire/test_flower_compat.py``
  fails when Flower's code changes).

The adjustments (measurements: docs/performance.md §7c, docs/deployment.md
"Registration before the Fleet API"):

``supernode-waits``
    The SuperNode loop (``flwr/supernode/start_client_internal.py``) sleeps a
    hard-coded 3 s after a pull that brought no message and checks every 0.5 s
    for the ClientApp's reply. Only that module's ``time`` name is replaced by a
    clock whose ``sleep`` maps exactly these two durations (ours: 0.2 s and
    0.05 s). Applied by the warm client's SuperNode
    (``launch.deploy.supernode_main``). Pays: a message waited 1.5 s on
    average before the node saw it.
``pull-backoff``
    When a message's content object is not yet where it is pulled from, Flower
    waits 1 s before the first retry (``PULL_INITIAL_BACKOFF``, bound as the
    keyword default of ``pull_objects`` and ``pull_and_inflate_object_from_tree``
    in ``flwr/supercore/inflatable/inflatable_utils.py``). The default of both
    functions is set to 0.05 s (the doubling, the 10 s cap and the limits stay
    Flower's). Applied in the ServerApp process (``serverapp.app``: Flower starts
    that process, so the adjustment lives at the lowest layer that needs it,
    here in ``wire/``), in the warm client's SuperNode and in its ClientApp
    worker. Pays: ~1 s per phase on loopback.
``register-before-fleet``
    The SuperLink's start-up (``SuperLinkLifespan``, the module global of
    ``flwr/superlink/cli/flower_superlink.py``) is subclassed so that a hook
    runs with the LinkState before ``_start_fleet_api``: ``fedmuscle server``
    registers the SuperNode keys there, so no node that connects at once is
    refused (a stock Flower SuperNode exits when refused; Flower 1.39 has no
    switch to admit keys before the Fleet API opens). Kept after a measurement
    (``bench/superlink_registration.py``, 4 keys, TLS, 2026-12-06): SuperLink up
    with the keys registered in 1.22 s (median of 3) against 7.17 s through
    Flower's Control API, and clients started with the server are never
    refused. Switched off, the server registers through the Control API and
    ``fedmuscle client`` relaunches a refused SuperNode after 5 s
    (:data:`SUPERNODE_REFUSED` below); a stock SuperNode would stay out.

Also here: the Flower log lines that the launch code steers by
(:data:`SUPERNODE_MARKS`), each tested against Flower's source, and against
the lines real Flower processes print in ``tests/integration/
test_deploy_registration.py`` and ``tests/integration/test_deployment.py``.

Flower's supported switches are used where they exist: ``--isolation process``
lets ``fedmuscle client`` run the ClientApp tasks itself without touching
Flower's code; for the three adjustments here Flower 1.39 has no flag or env var.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import time
import types
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: the one Flower release every adjustment here was written against
FLWR_VERSION = "1.39.0"
#: comma-separated adjustment names to leave out, or ``all``
OFF_ENV = "FEDMUSCLE_FLOWER_ADJUSTMENTS_OFF"

SUPERNODE_WAITS = "supernode-waits"
PULL_BACKOFF = "pull-backoff"
REGISTER_BEFORE_FLEET = "register-before-fleet"
#: every adjustment, by name
ADJUSTMENTS = (SUPERNODE_WAITS, PULL_BACKOFF, REGISTER_BEFORE_FLEET)

# ------------------------------------------------------------- log lines
#: Flower's exit code for "could not connect, or refused" (``ExitCode.
#: SUPERNODE_CONNECTION_ERROR``), logged by ``flwr_exit`` as ``Exit Code: 305``
#: (the process itself exits with status 1)
SUPERNODE_CONNECTION_ERROR = 305
#: the SuperNode gave up connecting or was refused (``flwr/supercore/exit/exit.py``
#: forms the line as ``f"Exit Code: {code}\n"``)
SUPERNODE_REFUSED = f"Exit Code: {SUPERNODE_CONNECTION_ERROR}"
#: the SuperNode stops itself (``start_client_internal``'s ``flwr_exit`` message)
SUPERNODE_LEAVING = "SuperNode terminated gracefully"
#: the SuperNode pushed a reply to the SuperLink
SUPERNODE_SENT = "Sent successfully"
#: the SuperLink no longer answers (``flwr/supercore/retry/grpc_retry.py``)
SUPERNODE_LOST = "Connection attempt failed"
#: the SuperLink admitted the node: ``SuperNode ID: <id>``
SUPERNODE_JOINED = "SuperNode ID: "
#: the SuperNode's TLS handshake failed (Flower's line; gRPC core adds its own)
SUPERNODE_TLS_FAILED = "SSL/TLS handshake error"
#: the SuperNode was started with ``--insecure`` (``flwr/common/args.py``, WARN)
SUPERNODE_INSECURE = "Option `--insecure` was set. Starting insecure channel"
#: the SuperLink refused an unregistered SuperNode key (its Fleet API's reason)
SUPERLINK_UNKNOWN_KEY = "No SuperNode found with the given public key"
#: every marker that must appear literally in Flower's source
SUPERNODE_MARKS = (
    SUPERNODE_LEAVING,
    SUPERNODE_SENT,
    SUPERNODE_LOST,
    SUPERNODE_JOINED.strip(),
    SUPERNODE_TLS_FAILED,
    SUPERNODE_INSECURE,
    SUPERLINK_UNKNOWN_KEY,
)


def switched_off(name: str) -> bool:
    """Whether ``FEDMUSCLE_FLOWER_ADJUSTMENTS_OFF`` leaves out adjustment ``name``."""
    names = {n.strip() for n in os.environ.get(OFF_ENV, "").split(",") if n.strip()}
    unknown = names - {"all", *ADJUSTMENTS}
    if unknown:
        raise ValueError(
            f"{OFF_ENV}: unknown adjustment {sorted(unknown)}; "
            f"known: {', '.join(ADJUSTMENTS)} or all"
        )
    return "all" in names or name in names


def _guard(name: str, problem: Callable[[], str | None]) -> str | None:
    """Why adjustment ``name`` does not apply (None: it applies)."""
    import flwr

    if switched_off(name):
        return f"switched off ({OFF_ENV})"
    if flwr.__version__ != FLWR_VERSION:
        return f"Flower {flwr.__version__} is not {FLWR_VERSION}"
    return problem()


# ------------------------------------------------------- supernode-waits
#: Flower's idle sleep and reply wait in that release, and how often each occurs
FLOWER_IDLE_S, FLOWER_REPLY_S = 3, 0.5
_EXPECTED_SLEEPS = {"time.sleep(3)": 1, "time.sleep(0.5)": 2}
DEFAULT_IDLE_S, DEFAULT_REPLY_S = 0.2, 0.05


class _Clock(types.ModuleType):
    """``time`` for one module, with Flower's two waits replaced."""

    def __init__(self, idle_s: float, reply_s: float) -> None:
        super().__init__("time")
        self._map = {float(FLOWER_IDLE_S): idle_s, float(FLOWER_REPLY_S): reply_s}

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        """Sleep, mapping Flower's two loop waits to ours."""
        time.sleep(self._map.get(float(seconds), seconds))


def supernode_waits_problem() -> str | None:
    """Why :func:`shorten_supernode_waits` would not apply (None: it applies)."""
    from flwr.supernode import start_client_internal as loop

    if getattr(loop, "time", None) is not time:
        return "start_client_internal no longer imports time as a module"
    source = inspect.getsource(loop)
    for line, count in _EXPECTED_SLEEPS.items():
        if source.count(line) != count:
            return f"start_client_internal has {source.count(line)}x {line!r}"
    return None


def shorten_supernode_waits(idle_s: float, reply_s: float) -> bool:
    """Shorten the SuperNode loop's idle sleep and reply wait; True if applied."""
    from flwr.supernode import start_client_internal as loop

    if problem := _guard(SUPERNODE_WAITS, supernode_waits_problem):
        log.warning("SuperNode waits left as Flower's: %s", problem)
        return False
    setattr(loop, "time", _Clock(idle_s, reply_s))  # noqa: B010 (module global)
    return True


# ---------------------------------------------------------- pull-backoff
#: Flower's first wait after an object was not yet available, in that release
FLOWER_INITIAL_BACKOFF_S = 1
#: ours: objects arrive within milliseconds of their message head
DEFAULT_INITIAL_BACKOFF_S = 0.05
_PULL_FUNCTIONS = ("pull_objects", "pull_and_inflate_object_from_tree")


def pull_backoff_problem() -> str | None:
    """Why :func:`shorten_pull_backoff` would not apply here (None: it applies)."""
    from flwr.supercore import constant
    from flwr.supercore.inflatable import inflatable_utils

    if getattr(constant, "PULL_INITIAL_BACKOFF", None) != FLOWER_INITIAL_BACKOFF_S:
        return "flwr.supercore.constant.PULL_INITIAL_BACKOFF changed"
    for name in _PULL_FUNCTIONS:
        function = getattr(inflatable_utils, name, None)
        defaults = getattr(function, "__kwdefaults__", None)
        if not defaults or "initial_backoff" not in defaults:
            return f"inflatable_utils.{name} has no keyword default initial_backoff"
    return None


def shorten_pull_backoff(initial_s: float = DEFAULT_INITIAL_BACKOFF_S) -> bool:
    """Make Flower's first object-pull retry wait ``initial_s``; True if applied."""
    from flwr.supercore.inflatable import inflatable_utils

    if problem := _guard(PULL_BACKOFF, pull_backoff_problem):
        log.warning("object pulls keep Flower's 1 s first retry: %s", problem)
        return False
    for name in _PULL_FUNCTIONS:
        getattr(inflatable_utils, name).__kwdefaults__["initial_backoff"] = initial_s
    return True


# ------------------------------------------------- register-before-fleet
#: the call in ``_run_superlink_http_api`` that reads the module global
_CREATE_APP = "create_app(lifespan_config, SuperLinkLifespan)"
#: the start-up order this relies on (state ready, then the Fleet API)
_STARTUP = ("self.state_factory.state()", "self._start_fleet_api()")
_CREATE_NODE_ARGS = ("owner_aid", "owner_name", "public_key", "heartbeat_interval")


def flower_superlink_module() -> types.ModuleType:
    """``flwr.superlink.cli.flower_superlink``, the module.

    (``from flwr.superlink.cli import flower_superlink`` gives the function of
    that name, which the package re-exports.)
    """
    return importlib.import_module("flwr.superlink.cli.flower_superlink")


def register_before_fleet_problem() -> str | None:
    """Why :func:`before_fleet_api` would not apply here (None: it applies)."""
    from flwr.server.superlink.linkstate import LinkState

    cli = flower_superlink_module()
    lifespan = getattr(cli, "SuperLinkLifespan", None)
    if not inspect.isclass(lifespan) or not hasattr(lifespan, "_start_fleet_api"):
        return "flower_superlink.SuperLinkLifespan._start_fleet_api is gone"
    if _CREATE_APP not in inspect.getsource(cli._run_superlink_http_api):
        return f"_run_superlink_http_api no longer calls {_CREATE_APP}"
    startup = inspect.getsource(cli.SuperLinkLifespan.startup)
    positions = [startup.find(call) for call in _STARTUP]
    if -1 in positions or positions != sorted(positions):
        return "SuperLinkLifespan.startup: no state before the Fleet API"
    params = inspect.signature(LinkState.create_node).parameters
    if any(name not in params for name in _CREATE_NODE_ARGS):
        return f"LinkState.create_node takes {list(params)}"
    return None


def before_fleet_api(hook: Callable[[Any], None]) -> bool:
    """Run ``hook(linkstate)`` in the SuperLink's start-up, before the Fleet API.

    True if the adjustment applies (then no node can connect before ``hook``).
    """
    cli = flower_superlink_module()

    if problem := _guard(REGISTER_BEFORE_FLEET, register_before_fleet_problem):
        log.warning(
            "SuperNode keys are registered after the SuperLink started: %s", problem
        )
        return False

    class RegisteringLifespan(cli.SuperLinkLifespan):  # type: ignore[name-defined,misc]
        """Flower's lifespan; ``hook`` sees the LinkState before the Fleet API."""

        def _start_fleet_api(self) -> None:
            hook(self.state_factory.state())
            super()._start_fleet_api()

    setattr(cli, "SuperLinkLifespan", RegisteringLifespan)  # noqa: B010 (module global)
    return True
