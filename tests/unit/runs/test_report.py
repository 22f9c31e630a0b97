"""The paper-format table and the plots, on synthetic run folders (no Flower)."""

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedmuscle_flwr.cli import cli
from fedmuscle_flwr.runs.experiment import (
    Plan,
    RunKey,
    load_results,
    read_plan,
    write_plan,
)
from fedmuscle_flwr.runs.metrics import SERVER_ROW, RunRecorder
from fedmuscle_flwr.runs.report import Stat, paper_markdown, paper_table, write_report

PNG = b"\x89PNG\r\n\x1a\n"
CLIENTS = {
    "a-cnn": ("classification", "cnn", "accuracy"),
    "b-mlp": ("multilabel", "mlp", "mAP"),
}
# final metric per (seed, algorithm, client)
FINALS = {
    (0, "local"): {"a-cnn": 0.5, "b-mlp": 0.8},
    (1, "local"): {"a-cnn": 0.6, "b-mlp": 0.8},
    (0, "fedmuscle"): {"a-cnn": 0.55, "b-mlp": 0.8},  # Δ +10, 0 -> mean +5
    (1, "fedmuscle"): {"a-cnn": 0.66, "b-mlp": 0.88},  # Δ +10, +10 -> mean +10
}


def make_run(
    run_dir: Path, finals: dict[str, float], rounds: int = 2, finish: bool = True
) -> None:
    recorder = RunRecorder(run_dir)
    for r in range(rounds + 1):
        for client, final in finals.items():
            task, model, name = CLIENTS[client]
            metric = final * (0.5 + 0.5 * r / rounds)
            recorder.record(
                r,
                client,
                phase="evaluate",
                task=task,
                model=model,
                **{"metric-name": name, "metric": metric},
            )
        recorder.record(
            r,
            SERVER_ROW,
            phase="round",
            **{
                "bytes-up": 1e6 * r,
                "bytes-down": 2e6 * r,
                "probe-muscle-loss": 5.0 - r,
                "probe-mi-bound": float(r),
                "mean-metric": 0.5,
            },
        )
    if finish:
        recorder.write_summary({"algorithm": run_dir.name})


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    folder = tmp_path / "exp"
    write_plan(folder, Plan("tiny", ("fedmuscle", "local"), (0, 1)))
    for (seed, algorithm), finals in FINALS.items():
        make_run(folder / f"seed-{seed}" / algorithm, finals)
    return folder


def test_stat_mean_sample_std_and_text():
    s = Stat.of([0.55, 0.66, math.nan])
    assert (
        s.n == 2
        and s.mean == pytest.approx(0.605)
        and s.std == pytest.approx(0.0777817, rel=1e-5)
    )
    assert s.text(".3f") == "0.605 ± 0.078"
    assert Stat.of([10.0]).text("+.1f") == "+10.0"
    assert Stat.of([-1.0, -3.0]).text("+.1f") == "-2.0 ± 1.4"
    assert Stat.of([]).text(".4f") == "–"


def test_paper_table_numbers(experiment):
    # Execute
    results = load_results(experiment)
    table = paper_table(results)
    # Assert: the algorithms, the clients, mean ± std over seeds, Δ per seed then over seeds
    assert results.seeds == (0, 1) and results.missing == ()
    assert table.algorithms == ("local", "fedmuscle") and table.compared == (
        "fedmuscle",
    )
    a, b = table.lines
    assert (a.client, a.model, a.task, a.metric_name) == (
        "a-cnn",
        "cnn",
        "classification",
        "accuracy",
    )
    assert a.metric["fedmuscle"].mean == pytest.approx(0.605)
    assert a.metric["local"].mean == pytest.approx(0.55)
    assert a.metric["local"].std == pytest.approx(math.sqrt(0.005))
    assert a.delta["fedmuscle"].mean == pytest.approx(10.0) and a.delta[
        "fedmuscle"
    ].std == pytest.approx(0.0, abs=1e-9)
    assert b.delta["fedmuscle"].mean == pytest.approx(5.0)
    assert b.delta["fedmuscle"].std == pytest.approx(math.sqrt(50.0))
    mean = table.mean_delta["fedmuscle"]
    assert (mean.mean, mean.std, mean.n) == (
        pytest.approx(7.5),
        pytest.approx(math.sqrt(12.5)),
        2,
    )
    md = paper_markdown(table, results)
    assert (
        "| a-cnn | cnn | classification | accuracy | 0.5500 ± 0.0707 | 0.6050 ± 0.0778 | +10.0 ± 0.0 |"
        in md
    )
    assert "**+7.5 ± 3.5**" in md and "seeds 0, 1" in md and "Missing" not in md


def test_write_report_writes_markdown_and_valid_pngs(experiment):
    from matplotlib.image import imread

    # Execute
    path = write_report(experiment)
    # Assert
    report = path.read_text()
    assert path == experiment / "report.md" and "Δ fedmuscle %" in report
    pngs = sorted((experiment / "plots").glob("*.png"))
    assert [p.name for p in pngs] == [
        "alignment.png",
        "bytes-per-round.png",
        "delta.png",
        "metric-per-round.png",
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == PNG
        assert imread(png).shape[0] > 100
        assert f"plots/{png.name}" in report


def test_missing_runs_are_reported_not_fatal(experiment):
    # Prepare: seed 1 fedmuscle interrupted (no summary), a planned seed 2 never started
    (experiment / "seed-1" / "fedmuscle" / "summary.json").unlink()
    write_plan(experiment, Plan("tiny", ("fedmuscle", "local"), (2,)))
    assert read_plan(experiment).seeds == (0, 1, 2)
    # Execute
    results = load_results(experiment)
    report = write_report(experiment).read_text()
    # Assert: only the finished pairs count
    assert results.missing == (
        RunKey(1, "fedmuscle"),
        RunKey(2, "fedmuscle"),
        RunKey(2, "local"),
    )
    table = paper_table(results)
    assert table.mean_delta["fedmuscle"].n == 1 and table.mean_delta[
        "fedmuscle"
    ].mean == pytest.approx(5.0)
    assert table.lines[0].metric["local"].n == 2
    assert "`seed-1/fedmuscle`" in report and "`seed-2/local`" in report
    assert (experiment / "plots" / "delta.png").is_file()


def test_run_session_folder_and_no_reference(tmp_path):
    # Prepare: a `fedmuscle run` session (one seed), then one without local
    session = tmp_path / "session"
    make_run(session / "fedmuscle", FINALS[0, "fedmuscle"])
    make_run(session / "local", FINALS[0, "local"])
    lonely = tmp_path / "lonely"
    make_run(lonely / "pairwise", FINALS[0, "fedmuscle"])
    # Execute
    result = CliRunner().invoke(cli, ["report", str(session)])
    report = write_report(lonely).read_text()
    # Assert
    assert result.exit_code == 0, result.output
    md = (session / "report.md").read_text()
    assert "| a-cnn | cnn | classification | accuracy | 0.5000 | 0.5500 | +10.0 |" in md
    assert "**+5.0**" in md and "One run per algorithm" in md
    assert "no Δ" in report and "0.5500" in report
    assert len(list((lonely / "plots").glob("*.png"))) == 4


def test_report_of_missing_folder_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such folder" in " ".join(result.output.split())


def test_experiment_runs_only_unfinished_runs(tmp_path):
    from fedmuscle_flwr.cli.common import build_run_config
    from fedmuscle_flwr.config.schema import ConfigError
    from fedmuscle_flwr.runs.experiment import experiment_configs, run_experiment

    # Prepare: 2 seeds x 2 algorithms; seed-0/local finished before, seed-1/fedmuscle
    # interrupted (a folder, no summary)
    folder = tmp_path / "exp"
    plan = Plan("tiny", ("fedmuscle", "local"), (0, 1))
    make_run(folder / "seed-0" / "local", FINALS[0, "local"])
    make_run(folder / "seed-1" / "fedmuscle", FINALS[1, "fedmuscle"], finish=False)
    configs = experiment_configs(
        plan, folder, lambda o: build_run_config("tiny", None, {**o}), resume=True
    )
    ran = []

    def execute(run):
        ran.append((run.seed, run.algorithm, run.checkpoint.resume))
        out = Path(run.output_dir) / run.run_name
        make_run(out, FINALS[run.seed, run.algorithm])
        return out

    # Execute
    done = run_experiment(configs, folder, execute)
    # Assert: each run got its seed and folder; the finished one was skipped
    assert configs[RunKey(1, "local")].output_dir == str(folder / "seed-1")
    assert ran == [(0, "fedmuscle", True), (1, "fedmuscle", True), (1, "local", True)]
    assert done == [RunKey(0, "fedmuscle"), RunKey(1, "fedmuscle"), RunKey(1, "local")]
    assert run_experiment(configs, folder, execute) == []
    assert load_results(folder).missing == ()
    # a fresh (not resumed) experiment refuses a folder that already holds a run
    (folder / "seed-0" / "local" / "checkpoint.json").write_text("{}")
    with pytest.raises(ConfigError):
        experiment_configs(
            plan, folder, lambda o: build_run_config("tiny", None, {**o}), resume=False
        )


def test_report_of_a_single_run_folder(tmp_path):
    # Prepare: what `fedmuscle server` leaves, one run with its config.json
    run = tmp_path / "20261202-120000-fedmuscle"
    make_run(run, FINALS[0, "fedmuscle"])
    (run / "config.json").write_text('{"algorithm": "fedmuscle"}')
    # Execute
    report = write_report(run).read_text()
    # Assert: one algorithm, its metrics, no Δ, the plots of the run
    assert "| a-cnn | cnn | classification | accuracy | 0.5500 |" in report
    assert "no Δ" in report
    assert len(list((run / "plots").glob("*.png"))) == 4


def test_plot_legend_is_outside_the_panels(experiment):
    from fedmuscle_flwr.runs.metrics import read_rows
    from fedmuscle_flwr.runs.plots import _figure, _line, _save

    # Prepare: two panels, two algorithms each
    runs = {
        a: [read_rows(experiment / f"seed-{s}" / a) for s in (0, 1)]
        for a in ("fedmuscle", "local")
    }
    fig, axes = _figure(2, "metric")
    for ax, client in zip(axes, ("a-cnn", "b-mlp"), strict=True):
        for algorithm, seeds in runs.items():
            _line(ax, seeds, client, "metric", algorithm)
    # Execute
    _save(fig, experiment / "m.png")
    # Assert: one figure legend naming each algorithm once, right of every panel
    assert all(ax.get_legend() is None for ax in axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["fedmuscle", "local"]
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert all(box.x0 >= ax.get_window_extent(renderer).x1 for ax in axes)


def test_rounds_csv_has_one_line_per_completed_round(tmp_path):
    import csv

    from fedmuscle_flwr.runs.metrics import round_table, write_rounds_csv

    # Prepare: rounds 0 (evaluation only), 1 (training, no evaluation), 2 (both)
    rows = [
        {"round": 0, "client": "a", "phase": "evaluate", "metric": 0.5},
        {"round": 0, "client": SERVER_ROW, "phase": "round", "probe-mi-bound": 0.1},
        {"round": 1, "client": "a", "phase": "train", "task-loss": 2.0},
        {"round": 1, "client": "b", "phase": "train", "task-loss": 1.0},
        {"round": 2, "client": "a", "phase": "evaluate", "metric": 0.7},
        {"round": 2, "client": SERVER_ROW, "phase": "round", "probe-mi-bound": 0.9},
    ]
    history = [{"round": r, "seconds": 1.0 + r, "clients": 2.0} for r in (0, 1, 2)]
    # Execute
    table = round_table(rows, history)
    path = write_rounds_csv(tmp_path, rows, history)
    # Assert
    assert [t["round"] for t in table] == [0, 1, 2]
    assert table[1]["task-loss"] == pytest.approx(1.5) and "metric:a" not in table[1]
    assert table[2]["metric:a"] == 0.7 and table[2]["probe-mi-bound"] == 0.9
    with path.open() as fh:
        lines = list(csv.DictReader(fh))
    assert path.name == "rounds.csv" and len(lines) == 3
    assert lines[0]["metric:a"] == "0.5" and lines[1]["metric:a"] == ""
    assert not list(tmp_path.glob(".*.tmp"))
