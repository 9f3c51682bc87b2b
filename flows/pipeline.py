"""Flow pipeline: data -> training -> generate -> evaluate, writing exactly the dvc.yaml outs.

    python -m flows.pipeline                              # one run, on params.yaml
    python -m flows.pipeline --serve --cron "0 3 * * *"   # a scheduled deployment (flow.serve)

Because every task writes the paths dvc.yaml declares, `dvc commit` records a run made here,
and a later `dvc repro` finds nothing to do.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.data import data
from flows.training import training
from tasks.evaluate import evaluate
from tasks.generate import generate
from tasks.params import load_params


@dataclass(frozen=True)
class Paths:
    """The dvc.yaml outs, relative to the project root (one place for the flow)."""

    raw: Path = Path("data/raw")
    interim: Path = Path("data/interim")
    processed: Path = Path("data/processed")
    model: Path = Path("models/train")
    samples: Path = Path("data/samples")
    metrics: Path = Path("metrics")

    @property
    def checkpoint(self) -> Path:
        return self.model / "checkpoints" / "last.pt"

    def under(self, root: Path) -> Paths:
        """The same layout below another project root (tests run in a temp copy)."""
        return Paths(**{f.name: root / getattr(self, f.name) for f in fields(self)})


# File writes can hit transient I/O trouble (network disks, a full /tmp): retry those tasks.
IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5}


@flow(name="pipeline", log_prints=True)
def pipeline(params_file: Path = Path("params.yaml"), root: Path = Path(".")) -> dict:
    """The whole chain on params_file (read at run time, so schedules pick up edits) under root.

    Returns the evaluation metrics (also in metrics/eval.json).
    """
    params = load_params(params_file)
    p = Paths().under(root)
    data(params, [p.raw], p.interim, p.processed)
    training(params, p.processed, p.model)
    gen = generate.with_options(**IO_RETRIES)
    gen(p.checkpoint, p.samples, params.generate)
    ev = evaluate.with_options(**IO_RETRIES)
    return ev(
        p.checkpoint, p.processed, p.samples, p.metrics, params.evaluate
    )


def main(argv: list[str] | None = None) -> None:
    """Run once, or --serve a scheduled deployment of the pipeline."""
    ap = argparse.ArgumentParser(prog="python -m flows.pipeline", description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--serve", action="store_true", help="register a deployment and serve it")
    ap.add_argument("--cron", default="0 3 * * *", help="schedule for --serve (cron syntax)")
    ap.add_argument("--name", default="meloformer-nightly")
    args = ap.parse_args(argv)
    runner = ThreadPoolTaskRunner(max_workers=load_params(args.params).preprocess.workers)
    flow_ = pipeline.with_options(task_runner=runner)
    if args.serve:
        flow_.serve(name=args.name, cron=args.cron, parameters={"params_file": str(args.params)})
    else:
        print(flow_(args.params))


if __name__ == "__main__":
    main()
