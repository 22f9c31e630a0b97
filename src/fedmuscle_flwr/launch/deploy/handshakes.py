"""Failed TLS handshakes on the SuperLink's Fleet API, as one clear server log line.

Flower 1.39's SuperLink says nothing when a TLS handshake on its Fleet API
fails (a client that does not trust the server's certificate, a plaintext
client, a port probe). gRPC core reports them only through its ``handshaker``
trace (grpcio 1.85: ``GRPC_TRACE=handshaker`` with ``GRPC_VERBOSITY=INFO``, on
stderr): one ``CallNextHandshakerLocked: error=<status>`` line per failure,
followed by continuation lines of which one carries the connection's
``endpoint_local_address`` and ``endpoint_peer_address``; a handshake that
succeeds produces a few ``error=OK`` lines. ``fedmuscle server`` starts the
SuperLink with :data:`TRACE_ENV` and passes every output line through a
:class:`HandshakeWatcher`, which

* turns each failure on the Fleet port into one warning naming the peer and
  the reason (rate-limited: a peer host at most once per ``per_host_s``, at
  most ``max_per_minute`` lines in all, the rest counted and summed up later);
* keeps gRPC's trace lines out of ``superlink.log`` (the failures are in the
  server's own log).

What gRPC tells the server: a client that does not trust the server's
certificate (wrong CA file, or the address it dialled is not among the
certificate's names) closes the connection after the server's first flight,
which the server sees as ``Handshake read failed (Socket closed)``, exactly as a
TCP probe that connects and closes; the SuperLink asks for no client
certificate (Flower 1.39: ``require_client_auth=False``), so "no or invalid
client certificate" cannot happen here. A plaintext client shows as
``WRONG_VERSION_NUMBER``, an HTTP client as ``HTTP_REQUEST``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: the SuperLink's environment additions that make gRPC report handshakes
TRACE_ENV = {"GRPC_VERBOSITY": "INFO", "GRPC_TRACE": "handshaker"}

#: a gRPC core log line: ``I1202 15:41:39.680377   29334 handshaker.cc:155] ...``
_GRPC_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")
#: the continuation lines gRPC appends to a status (its source location trace)
_CONTINUATION = re.compile(r"^(=== Source Location Trace: === ?|src/\S+:\d+| .*|)$")
_FAILED = re.compile(r"CallNextHandshakerLocked: error=(?!OK )(.*)$")
_PEER = re.compile(r"endpoint_peer_address=(?:ipv4:|ipv6:)?([^,}]+)")
_LOCAL = re.compile(r"endpoint_local_address=(?:ipv4:|ipv6:)?[^,}]*:(\d+)")

#: (what gRPC says, what it means for an operator)
_REASONS = (
    (
        "Socket closed",
        "the client closed the connection during the handshake: it does not trust "
        "this server's certificate (wrong CA file, or the address it dialled is "
        "not among the certificate's names), or it was a port probe",
    ),
    ("WRONG_VERSION_NUMBER", "the client does not speak TLS (plaintext/--insecure)"),
    ("HTTP_REQUEST", "the client sent plain HTTP, not TLS"),
    ("Connection reset", "the client reset the connection during the handshake"),
)


def reason(status: str) -> str:
    """What a gRPC handshake error status means, in words (else the status)."""
    for mark, words in _REASONS:
        if mark in status:
            return words
    return status.strip().rstrip(":")


@dataclass
class HandshakeWatcher:
    """Reads the SuperLink's output; logs failed handshakes on ``port``.

    Call it with each output line; it returns False for a gRPC trace line (to
    keep out of ``superlink.log``), True for every other line.

    Parameters
    ----------
    port : int
        The Fleet API port (other gRPC handshakes of the process are ignored).
    per_host_s : float
        A peer host is named at most once per this many seconds.
    max_per_minute : int
        At most this many lines per minute in all; the rest are counted.
    ignore : set of str
        Peer addresses (``ip:port``) not to report: the server's own port probes.
    """

    port: int
    per_host_s: float = 60.0
    max_per_minute: int = 10
    ignore: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic
    failures: list[tuple[str, str]] = field(default_factory=list)
    _pending: str | None = None
    _in_grpc: bool = False
    _last_by_host: dict[str, float] = field(default_factory=dict)
    _window: list[float] = field(default_factory=list)
    _suppressed: int = 0

    def __call__(self, line: str) -> bool:
        """Inspect one output line; False: keep it out of the log file."""
        if _GRPC_LINE.match(line):
            self._in_grpc = True
            body = _GRPC_LINE.sub("", line)
            failed = _FAILED.search(body)
            self._pending = failed.group(1) if failed else None
            if failed and _PEER.search(body):
                self._pending = None
                self._failed(failed.group(1), body)
            return False
        if not self._in_grpc or not _CONTINUATION.match(line):
            self._in_grpc, self._pending = False, None
            return True
        if self._pending is not None and _PEER.search(line):
            status, self._pending = self._pending, None
            self._failed(status, line)
        return False

    def _failed(self, status: str, args: str) -> None:
        local, peer = _LOCAL.search(args), _PEER.search(args)
        address = peer.group(1) if peer else "an unknown peer"
        if local is None or int(local.group(1)) != self.port or address in self.ignore:
            return
        self.failures.append((address, status))
        self._report(address, status)

    def _report(self, address: str, status: str) -> None:
        now = self.clock()
        host = address.rsplit(":", 1)[0]
        self._window = [t for t in self._window if now - t < 60.0]
        recent = now - self._last_by_host.get(host, -1e18) < self.per_host_s
        if recent or len(self._window) >= self.max_per_minute:
            self._suppressed += 1
            return
        self._last_by_host[host] = now
        self._window.append(now)
        more = (
            f" ({self._suppressed} more failed handshakes not logged since the last "
            "such line)"
            if self._suppressed
            else ""
        )
        self._suppressed = 0
        log.warning(
            "TLS handshake FAILED on the Fleet API with %s: %s%s",
            address,
            reason(status),
            more,
        )
