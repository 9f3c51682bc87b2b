"""Where the pipeline's files live: one `Paths` for dvc.yaml's commands and every flow.

dvc.yaml cannot import Python, so it spells the same paths out; tests/test_paths.py checks
that every stage's cmd, deps and outs there equal `Paths().stages()` here, so the two cannot
drift. The input folder is params.yaml's `raw` (`Paths.of(params)`); everything else is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """The pipeline's folders, relative to the project root (the folder of dvc.yaml)."""

    raw: Path = Path("data/raw")
    """The MIDI input folder: params.yaml `raw` (Paths.of)."""
    interim: Path = Path("data/interim")
    processed: Path = Path("data/processed")
    model: Path = Path("models/train")
    samples: Path = Path("data/samples")
    metrics: Path = Path("metrics")
    report: Path = Path("data/report")
    pretrained: Path = Path("models/pretrained")
    """The shipped models (git-tracked): train.init_from's default lives here."""

    @classmethod
    def of(cls, params, root: Path = Path(".")) -> Paths:
        """The paths of a run of `params` (its `raw`) below project root `root`."""
        return cls(raw=Path(params.raw)).under(root)

    def under(self, root: Path) -> Paths:
        """The same layout below another project root (an absolute field stays as it is)."""
        return Paths(**{f.name: Path(root) / getattr(self, f.name) for f in fields(self)})

    @property
    def params_ok(self) -> Path:
        """The params stage's marker (every other stage depends on it)."""
        return self.interim / "params.ok"

    @property
    def manifest(self) -> Path:
        return self.interim / "manifest.parquet"

    @property
    def discovered(self) -> Path:
        """discover.json: the discover run's counts and split fractions."""
        return self.interim / "discover.json"

    @property
    def checkpoints(self) -> Path:
        return self.model / "checkpoints"

    @property
    def checkpoint(self) -> Path:
        """The checkpoint generate and evaluate read."""
        return self.checkpoints / "last.pt"

    @property
    def page(self) -> Path:
        """The report stage's listening page."""
        return self.report / "index.html"

    def stages(self) -> dict[str, dict[str, list[Path]]]:
        """Per dvc.yaml stage: the data paths its command is given ("cmd"), the data it
        depends on ("deps", code and params.yaml left out) and every file it writes ("outs":
        outs, metrics and plots). tests/test_paths.py holds dvc.yaml to exactly these."""
        p, shards = self, self.processed / "shards"
        meta, rejects = self.processed / "meta.json", self.processed / "rejects.parquet"
        validation = self.processed / "validation.json"
        eval_json, samples_json = self.metrics / "eval.json", self.metrics / "samples.json"
        return {
            "params": {"cmd": [p.params_ok], "deps": [], "outs": [p.params_ok]},
            "discover": {"cmd": [p.raw, p.interim], "deps": [p.params_ok, p.raw],
                         "outs": [p.manifest, p.discovered]},
            "preprocess": {"cmd": [p.manifest, p.processed],
                           "deps": [p.params_ok, p.manifest, p.raw],
                           "outs": [shards, meta, rejects]},
            "validate": {"cmd": [p.processed, p.discovered],
                         "deps": [p.params_ok, p.discovered, shards, meta, rejects],
                         "outs": [validation]},
            "train": {"cmd": [p.processed, p.model, p.metrics],
                      "deps": [p.params_ok, shards, meta, validation, p.pretrained],
                      "outs": [p.checkpoints, p.model / "tb", p.model / "train.log",
                               p.metrics / "train.json", p.metrics / "train_config.json",
                               p.metrics / "plots" / "train_loss.tsv"]},
            "generate": {"cmd": [p.checkpoint, p.samples], "deps": [p.params_ok, p.checkpoints],
                         "outs": [p.samples]},
            "evaluate": {"cmd": [p.checkpoint, p.processed, p.samples, p.metrics],
                         "deps": [p.params_ok, p.checkpoints, shards, meta, p.samples],
                         "outs": [samples_json, eval_json, p.metrics / "plots" / "similarity.json",
                                  p.metrics / "plots" / "family_loss.json"]},
            "report": {"cmd": [p.samples, p.metrics, p.page],
                       "deps": [p.params_ok, p.samples, eval_json, samples_json],
                       "outs": [p.page, p.report / "rolls"]},
        }
