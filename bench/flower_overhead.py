"""Flower overhead: the same FedMuscle rounds in a plain loop, in simulation, deployed.

    # (a) tiny preset + tiny roster: plain loop vs Flower simulation (Ray), + echo app
    python bench/flower_overhead.py sim --rounds 5 --repeats 2 --echo-nodes 3,10 \\
        --out bench/results
    # (b) 10 tiny clients: loopback gRPC deployment vs plain loop vs simulation
    python bench/flower_overhead.py deploy --clients 10 --rounds 2 \\
        --set eval.initial=false --set eval.every=2 \\
        --set federation.wait-clients-s=900 --timeout 1800 --out bench/results

The plain loop (``_fed.plain_federation``) runs the flwr-free client runtime and the
server math of ``aggregation.py`` with the project's codec, in one process, one
client after the other. The simulation is ``fedmuscle_flwr.launch.simulation.simulate``
(Ray backend; ``--cpus-per-client 2`` on 2 cores runs one client at a time, like the
plain loop; 1 runs two in parallel). The deployment is ``fedmuscle server`` plus one
``fedmuscle client`` per roster entry on loopback (insecure), i.e. SuperLink,
SuperNodes, SuperExecs and one ClientApp process per message. Torch runs with
``--threads`` threads everywhere (OMP_NUM_THREADS, inherited by Ray actors and
Flower's processes). Round times are the driver's (train -> align -> evaluate when
due) and, where measurable, the CPU seconds of the whole process tree in the round
(robust to other users' load on a shared machine). Time outside the rounds (Ray or
process start, the initial evaluation, shutdown) is reported separately.
``--repeats`` alternates plain loop and simulation runs.
Writes flower_overhead_<part>.json/.md to --out (default $OUT or ./bench-out).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
#: the ``fedmuscle`` command, with this interpreter (and its sys.path)
CLI = [sys.executable, "-c", "from fedmuscle_flwr.cli import main; main()"]


def _setup(threads: int, tmp: Path) -> None:
    """Env before torch/Ray start: threads, state dir, quiet Flower."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ["FEDMUSCLE_STATE_DIR"] = str(tmp / "state")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def _plain(run: Any, profiles: Any) -> dict[str, Any]:
    import torch
    from _fed import plain_federation

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    t0 = time.time()
    rows = plain_federation(run, profiles)
    return {"total_s": time.time() - t0, "rounds": rows}


def _final(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r["clients"] for r in reversed(rows) if "clients" in r)


def _steady(rounds: list[dict[str, Any]], key: str = "seconds") -> list[float]:
    """``key`` of rounds 2.. (round 1 pays first-use costs in every engine)."""
    values = [float(r[key]) for r in rounds if r["round"] >= 1]
    return values[1:] if len(values) > 1 else values


# ------------------------------------------------------- (a) echo simulation
def echo_simulation(nodes: int, rounds: int, poll: float, cpus: float) -> dict:
    """Flower simulation of a no-compute echo app: pure per-phase latency.

    The ServerApp sends one message to every node and collects the replies with
    FedMuscle's own loop (``rounds.stream_replies``, poll ``poll`` s); the
    ClientApp replies at once. Round 0 (actor start-up) is reported apart.
    """
    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    from fedmuscle_flwr.serverapp.rounds import stream_replies

    walls: list[float] = []
    server, client = ServerApp(), ClientApp()

    @client.train()
    def echo(msg: Message, context: Context) -> Message:
        return Message(RecordDict({"c": ConfigRecord({"ok": 1})}), reply_to=msg)

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        while len(ids := sorted(grid.get_node_ids())) < nodes:
            time.sleep(0.05)
        for r in range(rounds + 1):
            t0 = time.perf_counter()
            msgs = [
                Message(RecordDict({"c": ConfigRecord({"r": r})}), n, "train")
                for n in ids
            ]
            replies = list(stream_replies(grid, msgs, 120.0, poll))
            assert len(replies) == nodes
            walls.append(time.perf_counter() - t0)

    backend = {
        "client_resources": {"num_cpus": cpus, "num_gpus": 0.0},
        "init_args": {"num_cpus": os.cpu_count() or 1, "include_dashboard": False},
    }
    run_simulation(server, client, nodes, backend_config=backend)  # type: ignore[arg-type]
    steady = walls[1:]
    return {
        "nodes": nodes,
        "poll_s": poll,
        "cpus_per_client": cpus,
        "first_round_s": walls[0],
        "rounds_s": steady,
        "median_s": statistics.median(steady),
        "min_s": min(steady),
        "max_s": max(steady),
    }


# -------------------------------------------------------------- (b) deployment
def deploy_timed(run: Any, profiles: Any, tmp: Path, timeout: float) -> dict[str, Any]:
    """``fedmuscle server`` + one ``fedmuscle client`` per profile, on loopback."""
    from _fed import server_rows

    from fedmuscle_flwr.launch.deploy.processes import (
        Managed,
        flower_env,
        free_port,
        process_group,
    )
    from fedmuscle_flwr.launch.deploy.server import write_run_config
    from fedmuscle_flwr.runs.metrics import read_summary

    fleet, control = free_port(), free_port()
    preset = write_run_config(run, tmp / "preset.toml")
    server_cmd = [
        *CLI, "server", "--insecure", "--preset", str(preset),
        "--address", f"127.0.0.1:{fleet}", "--control-address", f"127.0.0.1:{control}",
        "--output", str(tmp / "runs"), "--workdir", str(tmp / "server"),
    ]  # fmt: skip
    env = flower_env(tmp / "home")
    t0 = time.time()
    with process_group() as procs:
        server = Managed("server", server_cmd, env, tmp / "server.out")
        procs.append(server)
        for i, prof in enumerate(profiles):
            cmd = [
                *CLI, "client", "--insecure",
                "--server", f"127.0.0.1:{fleet}", "--profile", _profile_file(prof, tmp),
                "--state-dir", str(tmp / f"state-{i}"),
            ]  # fmt: skip
            home = tmp / f"client-{i}"
            procs.append(Managed(f"client-{i}", cmd, flower_env(home), home / "out"))
        deadline = time.time() + timeout
        while (code := server.poll()) is None and time.time() < deadline:
            dead = [c for c in procs[1:] if c.poll() not in (None, 0)]
            if dead:
                raise RuntimeError(f"{dead[0].name} failed; see {dead[0].log_path}")
            time.sleep(1.0)
    total = time.time() - t0
    if code != 0:
        raise RuntimeError(f"server exited {code}; see {tmp / 'server.out'}")
    log_text = (tmp / "server" / "logs" / "serverapp.log").read_text()
    run_dir = next((tmp / "runs").iterdir())
    return {
        "total_s": total,
        "rounds": _rounds_from_text(log_text),
        "final": read_summary(run_dir)["clients"],
        "server_rows": server_rows(run_dir),
    }


def _profile_file(profile: Any, tmp: Path) -> str:
    """The resolved profile (overrides applied, unique name) as a TOML file."""
    from fedmuscle_flwr.config.schema import flatten
    from fedmuscle_flwr.launch.deploy.processes import toml_value

    path = tmp / "profiles" / f"{profile.name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = flatten(profile.model_dump(by_alias=True, mode="json"))
    tables: dict[str, list[str]] = {}
    for key, value in flat.items():
        if value is None:  # TOML has no null: leave the field at its default
            continue
        table, _, leaf = key.rpartition(".")
        tables.setdefault(table, []).append(f"{leaf} = {toml_value(value)}")
    text = "\n".join(tables.pop(""))
    for table, lines in tables.items():
        text += f"\n[{table}]\n" + "\n".join(lines)
    path.write_text(text + "\n")
    return str(path)


def _rounds_from_text(text: str) -> list[dict[str, Any]]:
    """Round seconds from the ServerApp log relayed by ``fedmuscle server``."""
    rounds = re.findall(r"round (\d+) done in ([\d.]+) s", text)
    return [{"round": int(r), "seconds": float(s)} for r, s in rounds]


# ------------------------------------------------------------------- reporting
def _summary(name: str, res: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
    def steady(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(_steady(rows, key))

    rounds = [r for r in res["rounds"] if r["round"] >= 1]
    base_all = sum(float(r["seconds"]) for r in plain["rounds"] if r["round"] >= 1)
    med, med_base = steady(res["rounds"], "seconds"), steady(plain["rounds"], "seconds")
    out = {
        "engine": name,
        "rounds_s": [float(r["seconds"]) for r in rounds],
        "steady_median_s": med,
        "ratio_vs_plain": med / med_base,
        "beyond_plain_s": med - med_base,
        "all_rounds_ratio": sum(float(r["seconds"]) for r in rounds) / base_all,
        "outside_rounds_s": res["total_s"] - sum(float(r["seconds"]) for r in rounds),
        "total_s": res["total_s"],
    }
    if all("cpu_s" in r for r in rounds):
        cpu, cpu_base = steady(res["rounds"], "cpu_s"), steady(plain["rounds"], "cpu_s")
        out |= {"steady_cpu_s": cpu, "cpu_ratio_vs_plain": cpu / cpu_base}
    return out


def _same_metrics(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = sorted(a)
    return keys == sorted(b) and all(
        abs(a[k]["metric"] - b[k]["metric"]) < 1e-9 for k in keys
    )


def markdown(result: dict[str, Any]) -> str:
    env = result["env"]
    lines = [
        f"Run {env['date_utc']}, flwr {env['flwr']}, torch {env['torch']}, "
        f"{env['cpus']} cores, {result['threads']} torch thread(s), "
        f"load average {env['loadavg_1m']} (start) → {result['load_end']} (end); "
        f"{result['clients']} clients, {result['num_rounds']} rounds, "
        f"{result['repeats']} repeat(s).\n",
        "| engine | rep | round s (1..R) | median s, rounds 2..R | × plain (wall) "
        "| s beyond plain / round | CPU s / round | × plain (CPU) "
        "| s outside rounds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["summaries"]:
        rounds = ", ".join(f"{x:.2f}" for x in s["rounds_s"])
        cpu = f"{s['steady_cpu_s']:.2f}" if "steady_cpu_s" in s else "—"
        cpu_ratio = f"{s['cpu_ratio_vs_plain']:.2f}×" if "steady_cpu_s" in s else "—"
        lines.append(
            f"| {s['engine']} | {s['rep']} | {rounds} | {s['steady_median_s']:.2f} "
            f"| {s['ratio_vs_plain']:.2f}× | {s['beyond_plain_s']:+.2f} | {cpu} "
            f"| {cpu_ratio} | {s['outside_rounds_s']:.1f} |"
        )
    if result["echo"]:
        lines += [
            "",
            "Echo app in Flower simulation (no compute; one message per node per "
            "phase, FedMuscle's collect loop):",
            "",
            "| nodes | driver poll s | first phase s | phase s, median [min–max] |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {e['nodes']} | {e['poll_s']} | {e['first_round_s']:.1f} | "
            f"{e['median_s']:.3f} [{e['min_s']:.3f}–{e['max_s']:.3f}] |"
            for e in result["echo"]
        ]
    lines.append("")
    lines.append(f"Same final per-client metrics as the plain loop: {result['same']}")
    lines.append(f"Ray actors (OMP_NUM_THREADS, OS threads): {result['actors']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["sim", "deploy"])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--roster", default="", help="default: tiny (sim) / N tiny")
    ap.add_argument("--clients", type=int, default=10, help="deploy: roster size")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpus-per-client", default="2,1", help="simulation runs")
    ap.add_argument("--set", action="append", default=[], help="dotted key=value")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--echo-nodes", default="", help="echo simulations, e.g. 3,10")
    ap.add_argument("--echo-rounds", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fm-overhead-"))
    _setup(args.threads, tmp)
    sys.path.insert(0, str(BENCH))
    from _common import out_dir, write
    from _fed import (
        environment,
        roster_profiles,
        run_config,
        simulate_timed,
        write_roster,
    )

    if args.roster:
        roster = args.roster
    elif args.part == "sim":
        roster = "tiny"
    else:
        roster = str(write_roster(tmp / "roster.toml", args.clients))
    sets: dict[str, Any] = dict(kv.split("=", 1) for kv in args.set)
    if args.part == "deploy":  # simulation sets it from the roster by itself
        sets = {"federation.min-clients": args.clients, **sets}
    run = run_config(
        args.preset,
        **{"num-rounds": args.rounds, "federation.roster": roster},
        **{"output-dir": str(tmp / "runs"), **sets},
    )
    profiles = roster_profiles(roster)
    env = environment()
    summaries, results, same, actors = [], [], {}, {}
    for rep in range(args.repeats):
        found: dict[str, dict[str, Any]] = {}
        if args.part == "deploy" and rep == 0:  # first: fails fast, if at all
            found["deployment, loopback gRPC"] = deploy_timed(
                run, profiles, tmp / "deploy", args.timeout
            )
        run_r = run.model_copy(update={"run_name": f"plain-{rep}"})
        plain = found["plain loop"] = _plain(run_r, profiles)
        base = _final(plain["rounds"])
        for cpus in map(float, args.cpus_per_client.split(",")):
            found[f"simulation, {cpus:g} cpu/client"] = simulate_timed(run, cpus)
        for name, res in found.items():
            summaries.append(_summary(name, res, plain) | {"rep": rep})
            results.append({"engine": name, "rep": rep, **res})
            if name != "plain loop":
                same[f"{name} #{rep}"] = _same_metrics(base, res["final"])
            if res.get("actors"):
                actors[name] = res["actors"]
    poll = run.federation.poll_s
    echo = [
        echo_simulation(n, args.echo_rounds, poll, 1.0)
        for n in map(int, filter(None, args.echo_nodes.split(",")))
    ]
    payload = {
        "env": env,
        "echo": echo,
        "load_end": round(os.getloadavg()[0], 2),
        "threads": args.threads,
        "clients": len(profiles),
        "num_rounds": args.rounds,
        "repeats": args.repeats,
        "run": run.model_dump(by_alias=True, mode="json"),
        "summaries": summaries,
        "same": same,
        "actors": actors,
        "results": results,
    }
    stem = f"flower_overhead_{args.part}"
    write(out_dir(args.out or "bench-out"), stem, payload, markdown(payload))


if __name__ == "__main__":
    main()
