"""Per-round overhead of a Flower 1.39 deployment beyond compute, on loopback.

Starts ``flower-superlink`` and N ``flower-supernode`` processes (insecure, the
same orchestration as ``fedmuscle server``/``client``) and runs a scripted echo
app: the ServerApp pushes one message to every node and pulls replies with a
10 ms poll (FedMuscle's driver loop); the ClientApp replies at once (no torch,
no compute). A round's wall time is therefore pure deployment overhead.

    python bench/deployment_latency.py --nodes 10 --rounds 8
    python bench/deployment_latency.py --nodes 10 --superexec-poll 0.05

It also reports the import time of ``fedmuscle_flwr.clientapp.app``, which every
FedMuscle message pays again (one ClientApp process per message).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from fedmuscle_flwr.launch.deploy.control import (
    CONNECTION,
    flwr_json,
    wait_run,
    write_connection,
)
from fedmuscle_flwr.launch.deploy.processes import (
    Managed,
    flower_env,
    free_port,
    process_group,
    wait_for_port,
)

APP = """
import json, time
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

server = ServerApp()
client = ClientApp()

@client.train()
def echo(msg: Message, context: Context) -> Message:
    return Message(RecordDict({"c": ConfigRecord({"t": time.time()})}), reply_to=msg)

@server.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    while len(nodes := sorted(grid.get_node_ids())) < int(cfg["nodes"]):
        time.sleep(0.2)
    rounds = []
    for r in range(int(cfg["rounds"])):
        t0 = time.perf_counter()
        msgs = [Message(RecordDict({"c": ConfigRecord({"r": r})}), dst_node_id=n,
                        message_type="train") for n in nodes]
        pending, firsts = set(grid.push_messages(msgs)), []
        while pending:
            got = list(grid.pull_messages(pending))
            firsts += [time.perf_counter() - t0 for _ in got]
            pending -= {m.metadata.reply_to_message_id for m in got}
            time.sleep(0.01)
        rounds.append({"round": r, "wall": time.perf_counter() - t0,
                       "first": min(firsts), "replies": len(firsts)})
    with open(cfg["out"], "w") as fh:
        json.dump(rounds, fh)
"""

PYPROJECT = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
[project]
name = "latency-probe"
version = "0.1.0"
dependencies = []
[tool.hatch.build.targets.wheel]
packages = ["."]
[tool.flwr.app]
publisher = "fedmuscle"
[tool.flwr.app.components]
serverapp = "latency_app:server"
clientapp = "latency_app:client"
[tool.flwr.app.config]
rounds = 5
nodes = 2
out = ""
"""


def measure(
    nodes: int, rounds: int, poll: float | None, work: Path
) -> list[dict[str, float]]:
    app = work / "app"
    app.mkdir(parents=True)
    (app / "latency_app.py").write_text(textwrap.dedent(APP))
    (app / "pyproject.toml").write_text(PYPROJECT)
    extra = {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": str(poll)} if poll else {}
    env = flower_env(work / "home", extra)
    fleet, control = free_port(), free_port()
    out = work / "rounds.json"
    with process_group() as procs:
        link = Managed(
            "superlink",
            [
                "flower-superlink",
                "--insecure",
                "--fleet-api-address",
                f"127.0.0.1:{fleet}",
                "--port",
                str(control),
                "--disable-runtime-dependency-installation",
            ],
            env,
            work / "superlink.log",
        )
        procs.append(link)
        wait_for_port("127.0.0.1", control, 60, link)
        wait_for_port("127.0.0.1", fleet, 60, link)
        for i in range(nodes):
            procs.append(
                Managed(
                    f"node-{i}",
                    [
                        "flower-supernode",
                        "--insecure",
                        "--superlink",
                        f"127.0.0.1:{fleet}",
                        "--port",
                        str(free_port()),
                    ],
                    flower_env(work / f"home-{i}", extra),
                    work / f"node-{i}.log",
                )
            )
        write_connection(work / "home", f"127.0.0.1:{control}", None)
        overrides = f'rounds={rounds} nodes={nodes} out="{out}"'
        run_id = int(
            flwr_json(
                ["run", str(app), CONNECTION, "--run-config", overrides], env, 300
            )["run-id"]
        )
        status = wait_run(
            run_id,
            env,
            900,
            alive=lambda: link.poll() is None,
            hint=lambda: out.exists(),
        )
        assert status == "finished:completed", status
    return json.loads(out.read_text())


def import_seconds(module: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--superexec-poll",
        type=float,
        default=None,
        help="FLWR_SUPEREXEC_TASK_POLL_INTERVAL (default: Flower's 1 s)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fm-latency-") as tmp:
        rows = measure(args.nodes, args.rounds, args.superexec_poll, Path(tmp))
    walls = [r["wall"] for r in rows[1:]]  # round 0 includes warm-up
    firsts = [r["first"] for r in rows[1:]]
    result = {
        "nodes": args.nodes,
        "rounds": args.rounds,
        "superexec_poll_s": args.superexec_poll or 1.0,
        "round_wall_s": {
            "median": statistics.median(walls),
            "min": min(walls),
            "max": max(walls),
        },
        "first_reply_s_median": statistics.median(firsts),
        "per_round": rows,
        "import_s": {
            m: round(import_seconds(m), 2)
            for m in ("flwr.clientapp", "torch", "fedmuscle_flwr.clientapp.app")
        },
    }
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
