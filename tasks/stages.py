"""Which dvc.yaml stages a flow run must run, decided as `dvc repro` decides, and the record of
each stage it ran, as `dvc commit -f STAGE` writes it.

Before each stage a flow asks DVC's own status of that stage (its command, and the hashes of
its deps, params and outs against dvc.lock: the keys `dvc repro` compares) and skips the stage
when nothing changed. After running one it records the stage in dvc.lock, so the next run, a
scheduled one or `dvc repro`, finds it done. Outside a DVC project (tests on temp folders) or
on a params file other than the project's params.yaml, every stage runs and nothing is recorded.
"""

from __future__ import annotations

from pathlib import Path


class Stages:
    """The stage decisions of one flow run; `ran` and `skipped` list the stages in order."""

    def __init__(self, root: Path | None = None) -> None:
        """root: the DVC project (the folder of dvc.yaml) to ask and record in; None: none."""
        self.root = root
        self.ran: list[str] = []
        self.skipped: list[str] = []

    @classmethod
    def of(cls, params_file: Path, root: Path) -> Stages:
        """Gated by DVC when `root` holds dvc.yaml and `params_file` is its params.yaml (DVC
        knows no other params file, so its status would not describe the run)."""
        root = Path(root)
        if (root / "dvc.yaml").is_file() and Path(params_file).resolve() == (
                root / "params.yaml").resolve():
            return cls(root)
        return cls(None)

    def due(self, stage: str) -> bool:
        """Whether `stage` must run; prints the decision and why (DVC's status of the stage)."""
        why = self._changed(stage)
        if why is None:
            self.skipped.append(stage)
            print(f"{stage}: skipped, up to date in dvc.lock")
            return False
        self.ran.append(stage)
        print(f"{stage}: runs ({why})")
        return True

    def done(self, stage: str) -> None:
        """Record a stage this run ran in dvc.lock (`dvc commit -f STAGE`)."""
        if self.root is None:
            return
        from dvc.repo import Repo

        with Repo(str(self.root)) as repo:
            repo.commit(stage, force=True)

    def summary(self) -> str:
        """One line: which stages ran and which were skipped as up to date."""
        ran = ", ".join(self.ran) or "none"
        skipped = ", ".join(self.skipped) or "none"
        return f"stages run: {ran}; skipped (up to date in dvc.lock): {skipped}"

    def _changed(self, stage: str) -> str | None:
        """Why DVC would run `stage` now, or None when `dvc repro` would skip it."""
        if self.root is None:
            return "no DVC project to compare with"
        from dvc.repo import Repo

        with Repo(str(self.root)) as repo:
            status = repo.status(targets=[stage])
        return reason(status[stage]) if status.get(stage) else None


def reason(status: list) -> str:
    """DVC's status entries of one stage in a few words, e.g. "changed deps: params.yaml
    (train.learning_rate), data/raw"."""
    parts = []
    for entry in status:
        if isinstance(entry, str):
            parts.append(entry)
            continue
        for kind, changes in entry.items():
            names = [f"{path} ({', '.join(change)})" if isinstance(change, dict) else path
                     for path, change in changes.items()]
            parts.append(f"{kind}: {', '.join(names)}")
    return "; ".join(parts)
