"""Test-only fault injection for real ClientApp processes (test_faults.py).

Python imports ``sitecustomize`` at start-up from ``sys.path``. The fault tests
put this folder (and the repository root) on ``PYTHONPATH`` of *one*
``fedmuscle client`` and set

* ``FEDMUSCLE_TEST_FAULT``: a comma list of ways to break replies
  (``tests.faulty.MALFORM``: garbage, nan, shape, oversize, ...) or to poison the
  representations (``tests.faulty.POISON``: random, permuted, collapsed, ...);
* ``FEDMUSCLE_TEST_FAULT_COUNTER``: a file counting the replies sent so far.

The SuperNode, its SuperExec and every ClientApp process inherit the environment;
in the ClientApp, ``protocol.encode_reply`` is wrapped so that the n-th reply
that carries representations is broken in way n (cyclically). Without
``FEDMUSCLE_TEST_FAULT`` nothing is imported or changed.

``FEDMUSCLE_TEST_ATTACK`` (a comma list of ``tests.hostile.ATTACKS``) makes the
client hostile instead: Flower's ``ClientApp.__call__`` is wrapped so that the
reply Message our ClientApp returned is tampered with before Flower sends it
(``FEDMUSCLE_TEST_ATTACK_COUNTER``, ``FEDMUSCLE_TEST_ATTACK_START``: see below).
"""

import os

if os.environ.get("FEDMUSCLE_TEST_FAULT"):
    import dataclasses
    import sys
    from pathlib import Path

    import numpy as np
    from tests.faulty import MALFORM, POISON

    import fedmuscle_flwr.wire.protocol as _protocol

    _MODES = os.environ["FEDMUSCLE_TEST_FAULT"].split(",")
    _COUNTER = Path(os.environ["FEDMUSCLE_TEST_FAULT_COUNTER"])
    _encode_reply = _protocol.encode_reply

    def _next_mode() -> tuple[int, str]:
        n = int(_COUNTER.read_text()) if _COUNTER.is_file() else 0
        _COUNTER.write_text(str(n + 1))
        return n, _MODES[n % len(_MODES)]

    def encode_reply(reply, precision):  # type: ignore[no-untyped-def]
        if reply.z is None:
            return _encode_reply(reply, precision)
        n, mode = _next_mode()
        rng = np.random.default_rng(n)
        if mode in POISON:
            reply = dataclasses.replace(reply, z=POISON[mode](reply.z, rng))
        content = _encode_reply(reply, precision)
        if mode in MALFORM:
            MALFORM[mode](content, rng)
        sys.stderr.write(f"FAULT INJECTED #{n}: {mode}\n")
        return content

    _protocol.encode_reply = encode_reply

if os.environ.get("FEDMUSCLE_TEST_ATTACK"):
    # A hostile client (tests/hostile.py): every reply Message that leaves the
    # ClientApp -- after our encoder, at Flower's ClientApp boundary -- is
    # tampered with: reply n (counted in FEDMUSCLE_TEST_ATTACK_COUNTER, from 0)
    # gets attack n - FEDMUSCLE_TEST_ATTACK_START (cyclically); earlier ones
    # stay honest.
    import sys
    from pathlib import Path

    from flwr.clientapp import ClientApp

    _ATTACKS = os.environ["FEDMUSCLE_TEST_ATTACK"].split(",")
    _START = int(os.environ.get("FEDMUSCLE_TEST_ATTACK_START", "0"))
    _ATTACK_COUNTER = Path(os.environ["FEDMUSCLE_TEST_ATTACK_COUNTER"])
    _call = ClientApp.__call__

    def _hostile_call(self, message, context):  # type: ignore[no-untyped-def]
        reply = _call(self, message, context)
        n = int(_ATTACK_COUNTER.read_text()) if _ATTACK_COUNTER.is_file() else 0
        _ATTACK_COUNTER.write_text(str(n + 1))
        if n < _START or reply.has_error():
            return reply
        from tests.hostile import tamper

        attack = _ATTACKS[(n - _START) % len(_ATTACKS)]
        sys.stderr.write(f"ATTACK #{n}: {attack}\n")
        return tamper(reply, attack)

    ClientApp.__call__ = _hostile_call  # type: ignore[method-assign]
