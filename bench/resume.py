"""Training run checks for the GPU acceptance script: a run SIGKILLed mid-way and resumed with
--resume repeats the uninterrupted run's losses, and `torchrun --nproc_per_node 1` trains on
the device's backend (NCCL on CUDA, gloo on CPU).

    python -m bench.resume [--device cuda] [--steps 8] [--json OUT]

Both use the bundled sample (data/raw/sample), preprocessed once into a temporary directory,
and the training CLI exactly as a user runs it. Exit status: the number of failed checks.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import write_json
from meloformer.train import CheckpointError, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "raw" / "sample"
CKPT = Path("checkpoints") / "last.pt"


def train_cmd(data: Path, out: Path, device: str, steps: int, resume: bool = False) -> list[str]:
    """The training CLI at a short, checkpoint-every-2-steps setting."""
    length, batch = ("512", "2") if device == "cpu" else ("8192", "4")
    cmd = ["-m", "meloformer.train", "--data_dir", str(data), "--output_dir", str(out),
           "--device", device, "--max_seq_len", length, "--batch_size", batch,
           "--gradient_accumulation_steps", "1", "--num_workers", "2", "--max_steps", str(steps),
           "--save_every", "2", "--log_every", "1", "--warmup_steps", "2",
           "--phase2_step", "0", "--phase3_step", "0"]
    if device == "cpu":
        cmd += ["--model", "n_layer=2", "--model", "n_embd=64", "--model", "n_head=2",
                "--model", "n_kv_head=1"]
    return cmd + (["--resume"] if resume else [])


def losses(out: Path) -> list[float]:
    return load_checkpoint(out / CKPT)["history"][:, 1].tolist()


def killed_then_resumed(data: Path, out: Path, device: str, steps: int) -> bool:
    """Start a run, SIGKILL it once its first checkpoint exists, resume it; True if killed
    before the end (a run that finished first proves nothing)."""
    proc = subprocess.Popen([sys.executable, *train_cmd(data, out, device, steps)], cwd=REPO)
    while proc.poll() is None:
        try:
            if load_checkpoint(out / CKPT)["step"] < steps:
                proc.send_signal(signal.SIGKILL)
                break
        except CheckpointError:  # not written yet
            pass
        time.sleep(0.05)
    killed = proc.wait() == -signal.SIGKILL
    subprocess.run([sys.executable, *train_cmd(data, out, device, steps, resume=True)],
                   cwd=REPO, check=True)
    return killed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--json")
    args = ap.parse_args()
    tol = 1e-5 if args.device == "cpu" else 2e-3  # bf16 kernels may reorder sums between runs
    rows, failed = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "meloformer.preprocess", "--input", str(SAMPLE),
                        "--output", str(tmp / "data"), "--quiet"], cwd=REPO, check=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *train_cmd(tmp / "data", tmp / "straight", args.device,
                                                   args.steps)], cwd=REPO, check=True)
        seconds = time.perf_counter() - t0
        killed = killed_then_resumed(tmp / "data", tmp / "killed", args.device, args.steps)
        want, got = losses(tmp / "straight"), losses(tmp / "killed")
        diff = max((abs(a - b) for a, b in zip(want, got, strict=True)), default=float("inf")) \
            if len(want) == len(got) == args.steps else float("inf")
        ok = killed and diff <= tol
        failed += not ok
        rows.append({"bench": "resume", "case": f"SIGKILL + --resume, {args.steps} steps "
                     f"{'(killed)' if killed else '(finished before the kill)'} "
                     f"{'ok' if ok else 'FAILED'}", "sparse": diff, "baseline": tol,
                     "unit": "max |loss diff|", "speedup": tol / max(diff, 1e-12)})
        run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              "--nproc_per_node", "1",
                              *train_cmd(tmp / "data", tmp / "torchrun", args.device, 2)],
                             cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
        ok = run.returncode == 0 and len(losses(tmp / "torchrun")) == 2
        failed += not ok
        backend = "nccl" if args.device.startswith("cuda") else "gloo"
        rows.append({"bench": "resume", "case": f"torchrun --nproc_per_node 1 ({backend}) "
                     f"{'ok' if ok else 'FAILED'}", "sparse": float(ok), "baseline": 1.0,
                     "unit": "passed", "speedup": float(ok) or 1e-9})
    print(f"straight run: {args.steps} steps in {seconds:.1f} s")
    for r in rows:
        print(f"{r['case']}: {r['sparse']:.3g} ({r['unit']}; limit {r['baseline']:.3g})")
    if args.json:
        write_json(args.json, {"device": args.device, "summary": rows})
    sys.exit(failed)


if __name__ == "__main__":
    main()
