"""The README's add-track example on every bundled file: with --max-tokens left out, the
budget is sized from the prompt, so no file is refused as `max_tokens ... is too small`.

Decoding a whole new track with an untrained model takes minutes per long song, so the test
stops each run at the first budget check of the sampled run. That check is where the error
fires: `written + still needed` only grows as a song is written, and later steps are kept
under the cap by the closing rule (tests/test_generate.py), so passing the first check
means the run fits."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from meloformer.generate.constrain import Controller, GenerationError
from meloformer.generate.run import GenerateConfig, run_generate

SAMPLE = REPO / "data" / "raw" / "sample"
pytestmark = pytest.mark.usefixtures("one_thread")


class _FirstCheckPassed(Exception):
    """Raised right after a run's first budget check passed."""


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


def _refused(checkpoint: Path, out: Path, max_tokens: int | None) -> list[str]:
    """Bundled files whose add-track run (bass, program 33) is refused for its budget."""
    refused = []
    for path in sorted(SAMPLE.rglob("*.mid")):
        cfg = GenerateConfig(n_samples=1, max_tokens=max_tokens, device="cpu")
        try:
            run_generate(checkpoint, out, cfg, prompt=path, add_program=33)
        except _FirstCheckPassed:
            continue
        except GenerationError as e:
            assert "max_tokens" in str(e), e
            refused.append(path.name)
    return refused


def test_add_track_sizes_max_tokens_from_the_prompt_on_every_bundled_file(
    checkpoint, tmp_path, monkeypatch
):
    check = Controller._budget

    def stop_after_first_check(self, m, part):
        check(self, m, part)  # GenerationError when max_tokens is too small
        raise _FirstCheckPassed

    monkeypatch.setattr(Controller, "_budget", stop_after_first_check)
    assert len(list(SAMPLE.rglob("*.mid"))) == 71
    assert _refused(checkpoint, tmp_path, max_tokens=None) == []
    # The oracle can fail: the old fixed default refuses the long songs.
    assert len(_refused(checkpoint, tmp_path, max_tokens=4096)) > 10
