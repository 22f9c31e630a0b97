"""What a SuperNode's output says: refused, TLS failed, joined, leaving, run done.

Every line of the SuperNode is echoed (one timestamp per line, no colour codes)
and matched against the Flower log lines named in
:mod:`fedmuscle_flwr.wire.flower_compat` (tested there against Flower's source and
real Flower processes), plus gRPC core's TLS lines and the ClientApp's own mark
that the run finished.
"""

from __future__ import annotations

import logging
import re
import sys
import time

from fedmuscle_flwr.launch.deploy.processes import ReadyFile
from fedmuscle_flwr.runs.logs import RUN_FINISHED_MARK
from fedmuscle_flwr.wire.flower_compat import (
    SUPERNODE_INSECURE,
    SUPERNODE_JOINED,
    SUPERNODE_LEAVING,
    SUPERNODE_LOST,
    SUPERNODE_REFUSED,
    SUPERNODE_SENT,
    SUPERNODE_TLS_FAILED,
)

log = logging.getLogger(__name__)

#: a failed TLS handshake: Flower's line, and gRPC core's own two spellings
_TLS_MARKS = (SUPERNODE_TLS_FAILED, "Handshake failed", "Tls handshake failed")
#: seconds to wait for the last reply to be sent after the run finished
_FINAL_SEND_S = 60.0
#: seconds to stay online after the last reply was sent. Flower 1.39's SuperLink
#: answers the ServerApp "Node Unavailable" instead of a reply it already holds
#: once the node is offline (linkstate check_node_availability_for_in_message),
#: and a stopped SuperNode goes offline at once: so the client waits until the
#: server went away (SUPERNODE_LOST) or this long
_FINAL_GRACE_S = 30.0
#: a line with a timestamp: Flower's (``INFO 2026-12-02 16:08:55,905: ...``) or ours
_STAMPED = re.compile(r"^(?:[A-Z]+ \d{4}-\d\d-\d\d \d\d:\d\d|\d\d:\d\d:\d\d )")
#: the SuperLink admitted the node
_JOINED = re.compile(re.escape(SUPERNODE_JOINED) + r"(\d+)")
#: the SuperLink answers (again): after these, a new retry is said again. Flower
#: warns on every retry (SUPERNODE_LOST: while the server starts, or once it
#: stopped); those lines go to DEBUG, one INFO line says it instead
_ANSWERED = (SUPERNODE_SENT, SUPERNODE_JOINED)
#: Flower lines said at DEBUG only: ``fedmuscle client`` says the same in its own
#: INFO line (``--insecure``: TLS is off, and how to turn it on)
_DEBUG_ONLY = (SUPERNODE_INSECURE,)


class SuperNodeLog:
    """Echoes the SuperNode's output (no colour codes); notices what it says.

    Refusal (305), its self-termination, its node id once admitted, and the end
    of the run (the ClientApp's mark, then the SuperNode sent the last reply).
    """

    def __init__(self, server: str = "", ready: ReadyFile | None = None) -> None:
        self.server = server
        self.ready = ready or ReadyFile(None)
        self.refused = False
        self.tls_failed = False
        self.leaving: float | None = None  # when it logged SUPERNODE_LEAVING
        self.finished: float | None = None  # when the ClientApp logged the run's end
        self.final_sent: float | None = None  # the SuperNode sent a reply after that
        self.server_gone = False  # the SuperLink stopped answering after that
        self.retrying = False  # the SuperNode retries its connection (said once)

    def __call__(self, line: str) -> None:
        """Echo one line and note what it says."""
        # one timestamp per line: Flower's own lines carry one; uvicorn's (the
        # SuperNode's Runtime API) and multi-line messages get the time of day
        if SUPERNODE_LOST in line:  # Flower warns on every retry: one line here
            if not self.retrying:
                log.info("the server %s does not answer; retrying", self.server)
            self.retrying = True
            log.debug("%s", line)
        elif any(mark in line for mark in _DEBUG_ONLY):
            log.debug("%s", line)
        else:
            stamp = "" if _STAMPED.match(line) else time.strftime("%H:%M:%S ")
            sys.stdout.write(stamp + line + "\n")  # colour codes: stripped by the pump
            sys.stdout.flush()
            self.retrying &= not any(mark in line for mark in _ANSWERED)
        self.refused |= SUPERNODE_REFUSED in line
        self.tls_failed |= any(mark in line for mark in _TLS_MARKS)
        if self.leaving is None and SUPERNODE_LEAVING in line:
            self.leaving = time.monotonic()
        if (joined := _JOINED.search(line)) is not None:
            log.info("joined %s as node %s", self.server, joined.group(1))
            self.ready.set(f"node {joined.group(1)}")
        if RUN_FINISHED_MARK in line:
            self.run_finished()
        elif self.finished is not None and SUPERNODE_SENT in line:
            self.final_sent = time.monotonic()
        elif self.final_sent is not None and SUPERNODE_LOST in line:
            self.server_gone = True

    def done(self) -> bool:
        """The run finished and the server has (or had time to take) the reply."""
        if self.finished is None:
            return False
        if self.final_sent is None:
            if time.monotonic() - self.finished > _FINAL_SEND_S:
                log.warning("the last reply was not seen sent; stopping anyway")
                return True
            return False
        return self.server_gone or time.monotonic() - self.final_sent > _FINAL_GRACE_S

    def run_finished(self) -> None:
        """The ClientApp built its reply to the run's last message."""
        self.finished = time.monotonic()
