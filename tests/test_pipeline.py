"""The whole pipeline for a user: presets build, `dvc repro` end to end with experiments, and the
Prefect pipeline flow writing the same outs as dvc.yaml."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, make_clone, run_cmd

from meloformer.model.config import MODEL_SIZES, ModelConfig
from meloformer.train.config import PRESETS, resolve
from tasks.params import load_params

# A run small enough for a test: a few songs, a few steps, one short sample.
TINY = {
    "preset": None,
    "train": {
        "max_seq_len": 256, "batch_size": 1, "gradient_accumulation_steps": 1, "num_workers": 0,
        "max_steps": 3, "phase2_step": 0, "phase3_step": 0, "warmup_steps": 1, "epochs": 1,
        "compile": False, "save_every": 3, "log_every": 1,
    },
    "generate": {"n_samples": 1, "max_tokens": 200, "n_bars": 2},
    "evaluate": {"max_songs": 2, "max_tokens": 256, "batch_size": 1},
    "validate": {"max_reject_rate": 0.5, "split_tolerance": 1.0},
    "discover": {"val_fraction": 0.4, "test_fraction": 0.1},  # a val song among a handful
}  # fmt: skip


def test_every_preset_and_model_size_builds():
    params = load_params(REPO / "params.yaml")
    assert params.preset in PRESETS and params.model_size in MODEL_SIZES
    for name in PRESETS:
        cfg = resolve(name, asdict(params.train))
        assert cfg.batch_size >= 1 and cfg.max_seq_len >= 256, name
    for size in MODEL_SIZES:
        assert ModelConfig.from_name(size).n_layer >= 6


def dvc_outs(root: Path) -> list[Path]:
    """Every out, metric and plot path dvc.yaml declares."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                paths.append(root / (entry if isinstance(entry, str) else next(iter(entry))))
    return paths


def make_clean(root: Path, env: dict[str, str]) -> None:
    """Drop what a user's runs left in the copy (make_clone copies the working tree): their
    records (dvc.lock, metrics/) and their data pointers (*.dvc, e.g. the README's
    data/my-midi.dvc, whose data is in their cache only). The tests run on the bundled sample."""
    tracked = run_cmd(["git", "ls-files", "-z", "--", "*.dvc", "dvc.lock", "metrics"], root,
                      env).split("\0")
    for name in filter(None, tracked):
        (root / name).unlink()


def make_tiny(root: Path, n_files: int = 8) -> None:
    """Shrink the copy's sample and params to the TINY run, on data/raw at the small size."""
    sample = root / "data" / "raw" / "sample"
    keep = sorted(sample.glob("freedoom/*.mid"))[:n_files]
    for path in sample.rglob("*.mid"):
        if path not in keep:
            path.unlink()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params.update(raw="data/raw", model_size="small")  # whatever the user's copy points at
    for section, values in TINY.items():
        if isinstance(values, dict):
            params[section].update(values)
        else:
            params[section] = values
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


DVC = [sys.executable, "-m", "dvc"]


def out_files(root: Path) -> dict[str, str]:
    """sha256 of every file under every dvc.yaml out, except the params check's marker."""
    files = {}
    for out in dvc_outs(root):
        for path in [out] if out.is_file() else sorted(out.rglob("*")):
            if path.is_file() and path.name != "params.ok":
                files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


@pytest.fixture(scope="module")
def reprod(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A TINY clone after `dvc repro`, with the README's baseline commit (dvc.lock + metrics).

    Tests that change it put it back (git checkout + dvc checkout) before they end.
    """
    root, env = make_clone(tmp_path_factory.mktemp("reprod"))
    make_clean(root, env)
    make_tiny(root)
    run_cmd(["git", "commit", "-qam", "tiny"], root, env)
    run_cmd([*DVC, "repro"], root, env)
    run_cmd(["git", "add", "dvc.lock", "metrics"], root, env)
    run_cmd(["git", "commit", "-qm", "baseline run"], root, env)
    return root, env


def restore(root: Path, env: dict[str, str]) -> None:
    """Back to the baseline commit's workspace."""
    run_cmd(["git", "checkout", "--", "."], root, env)
    run_cmd([*DVC, "checkout", "--force"], root, env)


@pytest.mark.slow
def test_dvc_repro_end_to_end(reprod):
    root, env = reprod
    for path in dvc_outs(root):
        assert path.exists(), path
    assert list((root / "data/samples").glob("*.mid")) and list(
        (root / "data/samples").glob("*.png")
    )
    again = run_cmd([*DVC, "repro"], root, env)
    assert "Running stage" not in again  # a second repro runs nothing
    shown = run_cmd([*DVC, "metrics", "show"], root, env)
    assert "metrics/train.json" in shown and "metrics/eval.json" in shown
    assert "config" not in shown and "tokens_per_s" in shown  # the config is beside, not in
    config = json.loads((root / "metrics" / "train_config.json").read_text())
    assert config["train"]["max_seq_len"] == 256 and config["model"]["n_layer"] >= 1
    run_cmd([*DVC, "metrics", "diff", "HEAD"], root, env)  # git-tracked: HEAD has them


@pytest.mark.slow
@pytest.mark.parametrize(
    ("line", "bad", "message"),
    [
        ("model_size: ", "model_size: huge", "model_size: must be one of"),
        ("preset: ", "preset: nonsense", "preset: must be null or one of"),
        ("  learning_rate: ", "  learning_rate: -1e-3",
         "train.learning_rate: must be > 0, got -0.001"),
    ],
)
def test_a_bad_param_stops_repro_before_any_out_is_deleted(reprod, line, bad, message):
    root, env = reprod
    before = out_files(root)
    text = (root / "params.yaml").read_text().splitlines()
    i = next(i for i, t in enumerate(text) if t.startswith(line))
    (root / "params.yaml").write_text("\n".join([*text[:i], bad, *text[i + 1 :]]) + "\n")
    done = subprocess.run([*DVC, "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode != 0
    errors = [t for t in done.stderr.splitlines() if t.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert out_files(root) == before  # byte-identical: nothing was deleted or rewritten
    restore(root, env)


def readme_commands(heading: str) -> list[str]:
    """The lines of the first bash block under README heading `## heading`."""
    section = (REPO / "README.md").read_text().split(f"\n## {heading}\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def bash(line: str, root: Path, env: dict[str, str]) -> str:
    return run_cmd(["bash", "-c", line], root, env)


@pytest.mark.slow
def test_the_readme_experiments_do_not_confound_and_their_views_fit_a_terminal(reprod):
    """The README's Experiments commands, as written, on the TINY baseline: each experiment
    carries only its own -S change, the two views are at most 120 characters wide and show
    the headline metrics, then exactly the params that changed."""
    root, env = reprod
    commit, *runs, metrics_view, params_view, apply = readme_commands("Experiments")
    assert commit == 'git add dvc.lock metrics && git commit -m "baseline run"'  # reprod did it
    baseline = (root / "params.yaml").read_text()
    try:
        for line in runs:
            bash(line, root, env)
            assert (root / "params.yaml").read_text() == baseline, line  # workspace untouched
        table = list(csv.DictReader(io.StringIO(run_cmd([*DVC, "exp", "show", "--csv"], root,
                                                        env))))
        keys = ("train.learning_rate", "train.batch_size", "train.init_from")
        got = {row["Experiment"]: {k: row[k] for k in keys} for row in table if row["Experiment"]}
        base = {"train.learning_rate": "0.0003", "train.batch_size": "1",
                "train.init_from": "models/pretrained/small-dev.pt"}
        assert got == {
            "lr-1e-3": {**base, "train.learning_rate": "0.001"},
            "batch-4": {**base, "train.batch_size": "4"},
            "scratch": {**base, "train.init_from": ""},  # null
        }
        for row in table:  # train and eval metrics on every row, none missing ("!")
            for col in ("final_loss", "tokens_per_s", "loss.bits_per_note"):
                assert row[col] not in ("", "-", "!"), (col, row)
        shown = {}
        for name, line in (("metrics", metrics_view), ("params", params_view)):
            out = bash(line, root, {**env, "COLUMNS": "120"})
            assert max(map(len, out.splitlines())) <= 120, out
            assert "…" not in out and "lr-1e-3" in out and "scratch" in out, out
            shown[name] = out.splitlines()[1].split()  # the header row
        # TINY's 2-bar samples hold no 4-bar span: the copied share is empty, so DVC omits it
        spans = any(row.get("memorised.share") not in (None, "", "-") for row in table)
        assert shown["metrics"] == ["Experiment", "final_loss", "tokens_per_s",
                                    "loss.bits_per_note", "music.similarity_error",
                                    *(["memorised.share"] if spans else [])], shown
        assert shown["params"] == ["Experiment", "train.batch_size", "train.learning_rate",
                                   "train.init_from"], shown  # params.yaml's order
        bash(apply, root, env)
        assert load_params(root / "params.yaml").train.batch_size == 4
    finally:
        run_cmd([*DVC, "exp", "remove", "-A"], root, env)
        restore(root, env)


def set_params(root: Path, section: str, **values) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_ctrl_c_during_train_then_repro_continues_the_run(reprod, tmp_path):
    """SIGINT mid-train under `dvc repro` saves a checkpoint and fails the stage; the next
    `dvc repro` continues it and ends where an uninterrupted run ends."""
    root, env = reprod
    set_params(root, "train", max_steps=0, epochs=4, save_every=1000, save_every_s=0.0)
    run_cmd([*DVC, "repro", "params"], root, env)
    log = root / "models" / "train" / "train.log"
    log.unlink()  # the baseline's log has a "Step 3:" too
    proc = subprocess.Popen([*DVC, "repro", "train"], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group, like a terminal's job
    deadline = time.monotonic() + 300
    while not (log.exists() and "Step 3:" in log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0, out
    ckpt = torch.load(root / "models/train/checkpoints/last.pt", weights_only=True)
    assert ckpt["step"] >= 3 and not ckpt["complete"], out
    again = run_cmd([*DVC, "repro", "train"], root, env)
    assert "continuing the interrupted run" in again and f"resume at {ckpt['step']}" in again
    resumed = json.loads((root / "metrics" / "train.json").read_text())
    ref = tmp_path / "ref"
    run_cmd([sys.executable, "-m", "tasks.train", "--data_dir", "data/processed", "--out",
             str(ref), "--fresh"], root, env)
    whole = json.loads((ref / "metrics" / "train.json").read_text())
    assert resumed["steps"] == whole["steps"] and resumed["epochs_done"] == 4
    assert abs(resumed["final_loss"] - whole["final_loss"]) <= 1e-5
    restore(root, env)


STAGES = ["params", "discover", "preprocess", "validate", "train", "generate", "evaluate",
          "report"]


def skipped_line(ran: list[str]) -> str:
    """The pipeline's last line when it ran `ran` and skipped the other stages."""
    skipped = [s for s in STAGES if s not in ran]
    return (f"stages run: {', '.join(ran) or 'none'}; skipped (up to date in dvc.lock): "
            f"{', '.join(skipped) or 'none'}")


@pytest.mark.slow
def test_the_pipeline_flow_skips_what_dvc_repro_would_skip(reprod, tmp_path):
    """On the baseline every stage is up to date; after a generate param changes, the flow runs
    exactly the stages `dvc repro` would, and records them: `dvc repro` then does nothing."""
    root, env = reprod
    env = {**env, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_LOGGING_LEVEL": "INFO"}
    env.pop("PREFECT_API_URL", None)  # a temporary server for the one-off run
    def flow() -> str:
        """The one-off run's output: its printed lines are Prefect log lines, on stderr."""
        done = subprocess.run([sys.executable, "-m", "flows.pipeline"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert done.returncode == 0, done.stdout
        return done.stdout

    try:
        # up to date first: an earlier test may leave train's uncached outs (train.log, tb/)
        # changed, which restore() cannot bring back; dvc repro then reruns train too
        run_cmd([*DVC, "repro"], root, env)
        first = flow()
        assert skipped_line([]) in first, first
        set_params(root, "generate", seed=1)
        second = flow()
        assert skipped_line(["params", "generate", "evaluate", "report"]) in second, second
        assert "Running stage" not in run_cmd([*DVC, "repro"], root, env)
    finally:
        restore(root, env)


def test_an_unreachable_prefect_server_is_one_error_line(tmp_path):
    """PREFECT_API_URL left in the profile after the server stopped (README, Scheduling)."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path), "PYTHONPATH": str(REPO),
           "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    done = subprocess.run([sys.executable, "-m", "flows.pipeline"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: no Prefect server answers at {env['PREFECT_API_URL']}")
    assert "prefect config unset PREFECT_API_URL" in done.stderr


def test_the_at_capacity_line_is_logged_only_when_it_changes():
    import logging

    from flows.api import CAPACITY_LINE, quiet_capacity_line

    quiet_capacity_line()
    quiet_capacity_line()  # once is enough: installing twice changes nothing
    logger, seen = logging.getLogger("prefect.runner"), []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        for count in (1, 1, 1, 2, 2, 1):
            logger.info(CAPACITY_LINE, count)
        logger.info("something else")
        logger.info("something else")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen == [CAPACITY_LINE % 1, CAPACITY_LINE % 2, CAPACITY_LINE % 1,
                    "something else", "something else"]


def test_help_keeps_the_examples_on_their_own_lines(capsys):
    import flows.pipeline as pipeline_module

    with pytest.raises(SystemExit):
        pipeline_module.main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    assert '    python -m flows.pipeline --serve --cron "0 3 * * *"   # a scheduled deployment ' \
           "(flow.serve)" in lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM a process group started with start_new_session, SIGKILL if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(check, what: str, seconds: float, *procs: subprocess.Popen):
    """Poll `check()` until truthy; fail naming `what` on timeout or when a process died."""
    deadline = time.monotonic() + seconds
    while not (got := check()):
        for proc in procs:
            assert proc.poll() is None, f"{what}: {proc.args} exited {proc.returncode}"
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(1)
    return got


@pytest.mark.slow
def test_a_served_deployment_runs_on_schedule_and_skips_what_is_done(reprod, tmp_path):
    """A real `prefect server start`, the pipeline served with a short interval: the first
    scheduled run runs the stages a train param change touched, the next one skips every stage; the
    README's stop (pause, let the run finish, Ctrl-C) leaves nothing for `dvc repro` to do."""
    import httpx
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    root, env = reprod
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**env, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "INFO"}
    set_params(root, "train", seed=7)  # train reruns: its progress artifact is published
    logs = tmp_path / "server.log", tmp_path / "serve.log"
    server = subprocess.Popen(
        ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], cwd=root,
        env=env, stdout=logs[0].open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    serve = None
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, "prefect server health", 300, server)
        serve = subprocess.Popen(
            [sys.executable, "-m", "flows.pipeline", "--serve", "--interval", "30",
             "--name", "test-schedule"], cwd=root, env=env, stdout=logs[1].open("w"),
            stderr=subprocess.STDOUT, start_new_session=True)
        client = SyncPrefectClient(api=url)
        by_deployment = DeploymentFilter(name=DeploymentFilterName(any_=["test-schedule"]))

        def runs(*states: StateType) -> list:
            kinds = FlowRunFilterState(type=FlowRunFilterStateType(any_=list(states)))
            return client.read_flow_runs(deployment_filter=by_deployment,
                                         flow_run_filter=FlowRunFilter(state=kinds))

        ended = (StateType.COMPLETED, StateType.FAILED, StateType.CRASHED)
        done = wait_for(lambda: len(runs(*ended)) >= 2 and runs(*ended), "two finished "
                        "scheduled runs", 900, server, serve)
        # the README's safe stop: pause the schedule, let a running flow finish, then Ctrl-C
        run_cmd(["prefect", "deployment", "schedule", "pause", "--all", "--no-prompt"], root,
                env)
        wait_for(lambda: not runs(StateType.RUNNING, StateType.PENDING), "no running flow",
                 600, server, serve)
        assert [r.state.type for r in done] == [StateType.COMPLETED] * 2, logs[1].read_text()
        assert all(r.auto_scheduled for r in done)  # fired by the schedule, not by hand
        listed = run_cmd(["prefect", "artifact", "ls"], root, {**env, "COLUMNS": "300"})
        for key in ("meloformer-report", "meloformer-eval-metrics", "meloformer-train-progress"):
            assert key in listed, listed
    finally:
        for proc in (serve, server):
            if proc is not None:
                stop(proc)
    assert server.returncode is not None and serve.returncode is not None
    served = logs[1].read_text()
    assert skipped_line(["params", "train", "generate", "evaluate", "report"]) in served, served
    assert skipped_line([]) in served, served  # the next run: everything up to date
    assert served.count("scheduled runs skipped (at capacity)") <= 2, served
    assert "Running stage" not in run_cmd([*DVC, "repro"], root, env)
    restore(root, env)


@pytest.mark.slow
def test_plots_diff_shows_two_runs_piano_rolls_side_by_side(reprod, tmp_path):
    root, env = reprod
    run_cmd([*DVC, "exp", "run", "-S", "generate.seed=1", "-n", "seed1"], root, env)
    try:
        shown = json.loads(run_cmd([*DVC, "plots", "diff", "HEAD", "seed1", "--json", "-o",
                                    str(tmp_path / "plots"), "--targets", "data/report/rolls"],
                                   root, env))
    finally:
        run_cmd([*DVC, "exp", "remove", "seed1"], root, env)
        restore(root, env)
    images = shown["data"]["data/report/rolls/sample-000.png"]
    assert [(i["type"], i["revisions"]) for i in images] == [
        ("image", ["HEAD"]), ("image", ["seed1"])]
    first, second = (Path(i["url"]).read_bytes() for i in images)
    assert first[:4] == b"\x89PNG" and first != second  # another seed, another sample


@pytest.mark.slow
def test_dvc_artifacts_get_fetches_the_checkpoint_from_a_clone(reprod, tmp_path):
    """The README's commands: a DVC remote, a GTO version tag, then `dvc artifacts get`."""
    root, env = reprod
    run_cmd([*DVC, "remote", "add", "-d", "store", str(tmp_path / "store")], root, env)
    run_cmd([*DVC, "push"], root, env)
    run_cmd(["git", "commit", "-qam", "a remote"], root, env)
    run_cmd(["gto", "register", "meloformer-model", "--version", "v0.1.0"], root, env)
    try:
        run_cmd(["git", "clone", "-q", str(root), str(tmp_path / "clone")], tmp_path, env)
        run_cmd([*DVC, "artifacts", "get", str(tmp_path / "clone"), "meloformer-model", "-o",
                 "got.pt"], tmp_path, env)
    finally:
        run_cmd(["git", "tag", "-d", "meloformer-model@v0.1.0"], root, env)
        run_cmd(["git", "reset", "-q", "--hard", "HEAD~1"], root, env)
        restore(root, env)
    ckpt = root / "models" / "train" / "checkpoints" / "last.pt"
    assert (tmp_path / "got.pt").read_bytes() == ckpt.read_bytes()
    from dvc.repo import Repo

    artifact = Repo(str(root)).artifacts.read()["dvc.yaml"]["meloformer-model"]
    assert (artifact.type, artifact.labels) == ("model", ["size-small", "preset-None"])


def test_serve_registers_a_scheduled_deployment(monkeypatch):
    """`python -m flows.pipeline --serve --cron ...` hands the schedule to flow.serve."""
    from prefect.flows import Flow

    import flows.pipeline as pipeline_module

    seen: dict = {}
    monkeypatch.setattr(Flow, "serve", lambda self, **kw: seen.update(kw, flow=self.name))
    pipeline_module.main(["--serve", "--cron", "0 3 * * *", "--params", str(REPO / "params.yaml")])
    assert seen.pop("schedule").cron == "0 3 * * *"
    assert seen == {
        "flow": "pipeline",
        "name": "meloformer-nightly",
        "limit": 1,
        "parameters": {"params_file": str(REPO / "params.yaml")},
    }
    pipeline_module.main(["--serve", "--interval", "60", "--params", "params.yaml"])
    assert seen["schedule"].interval.total_seconds() == 60
