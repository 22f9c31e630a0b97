"""The resident ClientApp: the FedMuscle ClientApp, warm, in ``fedmuscle client``.

Flower 1.39's SuperNode with ``--isolation subprocess`` starts a SuperExec that
launches one ``flwr-clientapp`` process per message: each imports torch and the
app, installs the FAB, rebuilds the client's model and re-reads its data
(docs/performance.md §7). With ``--isolation process`` the SuperNode only queues
tasks on its ClientAppIo (Runtime) API and leaves their execution to someone
else. :class:`ResidentClientApp` is that someone, in ``fedmuscle client``'s own
process: it acquires each task from the Runtime API, pulls the task input, runs
the ClientApp and pushes the reply and the task's output with Flower's own
functions (the flow of ``flwr-clientapp``, :mod:`flwr.supernode.runtime.run_clientapp`),
so the client's runtime (model, optimisers, data, public set) stays in memory
across messages and rounds (``clientapp.runner.RuntimeCache``).

It serves only the FedMuscle ClientApp installed here and never imports a run's
FAB: a run whose FAB is not this client's installed app (another name, version or
``clientapp`` component, or a package file that differs) gets an error reply
(``clientapp/bundle.py``). (Named "resident", not "executor":
Flower's SuperExec and ``--isolation`` are Flower's words for who runs tasks.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.runtime_pb2 import (
    AcquireTaskRequest,
    SendTaskHeartbeatRequest,
)
from flwr.supercore.constant import TaskType
from flwr.supercore.heartbeat import HeartbeatSender
from flwr.supercore.interceptors import (
    RuntimeTokenHttpInterceptor,
    RuntimeVersionHttpInterceptor,
)
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supernode.runtime.run_clientapp import (
    pull_task_input,
    push_message,
    push_task_output,
)

from fedmuscle_flwr.clientapp.app import STATUS
from fedmuscle_flwr.clientapp.bundle import BundleRefused, check_bundle
from fedmuscle_flwr.clientapp.sanitize import describe
from fedmuscle_flwr.data.fingerprint import PublicSetMismatchError
from fedmuscle_flwr.wire.flower_compat import (
    DEFAULT_INITIAL_BACKOFF_S,
    shorten_pull_backoff,
)

log = logging.getLogger(__name__)

#: seconds between AcquireTask polls while the SuperNode has no task
DEFAULT_POLL_S = 0.02
#: seconds between polls while the SuperNode's Runtime API does not answer
_DOWN_POLL_S = 0.5


class ResidentClientApp:
    """Runs the SuperNode's ClientApp tasks in this process, one at a time.

    Parameters
    ----------
    runtime_address : str
        The SuperNode's Runtime (ClientAppIo) API ``HOST:PORT`` (plain HTTP on
        loopback, as between a SuperNode and its ``flwr-clientapp``).
    app : ClientApp
        The ClientApp to run (FedMuscle's).
    poll_s : float
        Seconds between task polls when idle.
    on_reply : callable or None
        Called with the ClientApp's status record (``clientapp.app.STATUS`` in the
        task's context state, as a dict; empty if none) and the task's seconds
        so far, after the ClientApp returned and before its reply goes to the
        SuperNode (so whatever it notes happens before the reply can be sent).
    pull_backoff_s : float
        First wait when the task input's objects are not yet at the SuperNode
        (Flower's: 1 s; :mod:`fedmuscle_flwr.wire.flower_compat`).
    """

    def __init__(
        self,
        runtime_address: str,
        app: ClientApp,
        poll_s: float = DEFAULT_POLL_S,
        on_reply: Callable[[dict[str, Any], float], None] | None = None,
        pull_backoff_s: float = DEFAULT_INITIAL_BACKOFF_S,
    ) -> None:
        self.address, self.app, self.poll_s = runtime_address, app, poll_s
        self.pull_backoff_s = pull_backoff_s
        self.on_reply = on_reply
        self.stopped = threading.Event()
        self.tasks = 0
        self._accepted: set[str] = set()  # hashes of bundles that passed the pin
        self._refusals: set[str] = set()  # public-set refusals already logged
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Serve tasks in a daemon thread until :meth:`stop`."""
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per poll
        # the SuperNode offers a task while it still pulls the message's objects
        # from the SuperLink: the task input's first retry waits 0.05 s, not 1 s
        shorten_pull_backoff(self.pull_backoff_s)
        self._thread = threading.Thread(
            target=self.serve, name="fedmuscle-resident-clientapp", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling (a task in progress finishes first, up to ``timeout``)."""
        self.stopped.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def serve(self) -> None:
        """Poll the Runtime API for ClientApp tasks and run them."""
        client = self._client()
        request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP])
        try:
            while not self.stopped.is_set():
                try:
                    res = client.AcquireTask(request)
                except httpx.HTTPError as exc:  # SuperNode (re)starting or gone
                    log.debug("Runtime API at %s: %s", self.address, exc)
                    self.stopped.wait(_DOWN_POLL_S)
                    continue
                if res.HasField("task") and res.token:
                    self.run_task(res.token)
                    continue  # the next message may be queued already
                self.stopped.wait(self.poll_s)
        finally:
            client.close()

    def _client(self, token: str | None = None) -> RuntimeHttpClient:
        component = "flwr-clientapp" if token else "SuperExec"
        version = RuntimeVersionHttpInterceptor(component_name=component)
        interceptors: list[Any] = [version]
        if token:
            interceptors.append(RuntimeTokenHttpInterceptor(token))
        return RuntimeHttpClient.from_server_address(
            server_address=self.address,
            insecure=True,
            root_certificates=None,
            interceptors=interceptors,
            retry_invoker=None,  # errors surface here; no SIGINT to this process
        )

    # ----------------------------------------------------------------- task
    def _check_bundle(self, run_id: int, fab_hash: str, content: bytes) -> None:
        """Serve only runs whose app bundle is this client's installed app.

        The bundle's code is never imported here; a foreign or modified one is
        refused (``clientapp/bundle.py``), checked once per bundle and logged.
        """
        if fab_hash in self._accepted:
            return
        try:
            check_bundle(content)
        except BundleRefused as exc:
            log.error("run %s refused: %s", run_id, exc)
            raise
        self._accepted.add(fab_hash)

    def run_task(self, token: str) -> None:
        """One task: pull its input, run the ClientApp, push reply and output.

        The same steps and error replies as Flower's ``flwr-clientapp``, minus
        the FAB installation and the app import (the app is already loaded).
        """
        t0 = time.perf_counter()
        client = self._client(token)
        heartbeat = HeartbeatSender(_heartbeat_fn(client))
        message: Message | None = None
        context: Context | None = None
        reply: Message | None = None
        status, details = SubStatus.FAILED, "ClientApp task failed"
        try:
            heartbeat.start()
            message, context, run, fab = pull_task_input(client)
            self._check_bundle(run.run_id, fab.hash_str, fab.content)
            reply = self.app(message=message, context=context)
            status, details = SubStatus.COMPLETED, ""
            if self.on_reply is not None:
                record = context.state.config_records.get(STATUS)
                noted: dict[str, Any] = dict(record) if record is not None else {}
                self.on_reply(noted, time.perf_counter() - t0)
        except Exception as exc:
            if isinstance(exc, PublicSetMismatchError):  # a refusal: one line
                if str(exc) not in self._refusals:  # once, not once per message
                    self._refusals.add(str(exc))
                    log.error("REFUSED: %s", exc)
            else:
                log.error("ClientApp raised an exception", exc_info=exc)
            reason = describe(exc)  # what the server sees: no local paths
            details = reason
            if message is not None:
                error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason)
                reply = Message(error, reply_to=message)
        finally:
            try:
                status = self._push(client, reply, context, status)
                push_task_output(client, context, status, details)
            except httpx.HTTPError as exc:  # the SuperNode stopped (Ctrl-C, its end)
                log.warning("the SuperNode is gone; reply not delivered (%s)", exc)
            heartbeat.stop()
            client.close()
        self.tasks += 1

    @staticmethod
    def _push(
        client: RuntimeHttpClient,
        reply: Message | None,
        context: Context | None,
        status: str,
    ) -> str:
        """Push the reply; the task's status after that (FAILED if it could not)."""
        if reply is None or context is None:
            return status
        try:
            push_message(client, reply, context)
        except httpx.HTTPError:
            raise
        except Exception as exc:
            log.error("could not push the reply to the SuperNode", exc_info=exc)
            return SubStatus.FAILED
        return status


def _heartbeat_fn(client: RuntimeHttpClient) -> Callable[[], bool]:
    """Task heartbeats that never signal this process (Flower's SIGINTs its own)."""
    request = SendTaskHeartbeatRequest()

    def send() -> bool:
        try:
            if not client.SendTaskHeartbeat(request).success:
                log.warning("the SuperNode no longer knows the running task")
            return True
        except httpx.HTTPError:
            return False

    return send
