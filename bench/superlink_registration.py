"""SuperLink start-up with the keys registered: before the Fleet API vs Control API.

    python bench/superlink_registration.py --keys 4 --trials 3 --out bench/results

Times, from starting the SuperLink (TLS, SuperNode authentication) until it is up
with ``--keys`` keys registered, in alternating trials:

* ``before-fleet``: ``fedmuscle server``'s route
  (``launch.deploy.superlink_process.start_superlink``: the SuperLink's own process
  puts the keys into its LinkState before its Fleet API opens,
  ``launch/deploy/superlink_main.py``, adjustment ``register-before-fleet`` of
  ``wire/flower_compat.py``);
* ``control-api``: Flower's route, the plain ``flower-superlink`` and then
  ``flwr supernode register`` per key through the Control API (in parallel, as
  ``launch.deploy.control.register_nodes`` does), i.e. the server before this change.

Writes superlink_registration.json/.md to --out (default ./bench-out), with the
1-minute load average at each trial's start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def one(route: str, certs: Path, keys: Path, work: Path) -> float:
    """Seconds from starting the SuperLink to up with the keys registered."""
    from fedmuscle_flwr.launch.deploy import superlink_process as server
    from fedmuscle_flwr.launch.deploy.certs import CA_CERT, read_public_keys
    from fedmuscle_flwr.launch.deploy.control import register_nodes, write_connection
    from fedmuscle_flwr.launch.deploy.processes import (
        Managed,
        flower_env,
        free_port,
        process_group,
        split_address,
        wait_for_port,
    )

    opts = server.ServerOptions(
        fleet_address=f"127.0.0.1:{free_port()}",
        control_address=f"127.0.0.1:{free_port()}",
        tls_dir=certs,
        auth_keys=keys,
    )
    env = flower_env(work / "home")
    t0 = time.monotonic()
    with process_group() as procs:
        if route == "before-fleet":
            _, registered = server.start_superlink(opts, work, env, procs)
        else:
            link = Managed(
                "superlink", server.superlink_command(opts), env, work / "sl.log"
            )
            procs.append(link)
            for address in (opts.control_address, opts.fleet_address):
                wait_for_port(*split_address(address), timeout=60, proc=link)
            home = Path(env["FLWR_HOME"])
            write_connection(home, opts.control_address, certs / CA_CERT)
            registered = register_nodes(read_public_keys(keys), work, env)
        seconds = time.monotonic() - t0
    assert len(registered) == len(read_public_keys(keys)), registered
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args()
    from fedmuscle_flwr.launch.deploy.certs import generate

    results: dict[str, list[dict[str, float]]] = {"before-fleet": [], "control-api": []}
    with tempfile.TemporaryDirectory() as tmp:
        certs = Path(tmp) / "certs"
        generate(certs, ["127.0.0.1"], nodes=args.keys)
        keys = certs / "authorized-nodes.txt"
        for trial in range(args.trials):
            for route in results:
                load = os.getloadavg()[0]
                seconds = one(route, certs, keys, Path(tmp) / f"{route}-{trial}")
                results[route].append({"seconds": seconds, "load": load})
                print(f"{route}: {seconds:.2f} s (load {load:.2f})", flush=True)
    payload: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "keys": args.keys,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "superlink_registration.json").write_text(json.dumps(payload, indent=1))
    lines = [
        f"# SuperLink up with {args.keys} keys registered (TLS, loopback)",
        "",
        f"{payload['date']}, {os.cpu_count()} CPUs",
        "",
        "| route | seconds per trial | median | load (1 min) at each start |",
        "|---|---|---|---|",
    ]
    for route, rows in results.items():
        secs = ", ".join(f"{r['seconds']:.2f}" for r in rows)
        loads = ", ".join(f"{r['load']:.2f}" for r in rows)
        median = statistics.median(r["seconds"] for r in rows)
        lines.append(f"| {route} | {secs} | {median:.2f} | {loads} |")
    (args.out / "superlink_registration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
