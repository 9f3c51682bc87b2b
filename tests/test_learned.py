"""A checkpoint records what its model was trained for (infill, per-bar controls), a fine-tune
keeps what its start learned, and generate refuses what the model never learned, in one line
naming the training param."""

from __future__ import annotations

import pytest
import torch

from meloformer.generate.__main__ import main
from meloformer.model import MeloFormer, ModelConfig
from meloformer.train.checkpoint import (
    learned,
    load_learned,
    model_config_dict,
    save_checkpoint,
    trained_for,
)

PLAIN = {"infill_rate": 0.0, "control_rate": 0.0, "init_from": None}


def _checkpoint(path, **extra):
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(n_layer=1, n_embd=64, n_head=4, n_kv_head=2))
    save_checkpoint(path, {"model": model.state_dict(),
                           "model_config": model_config_dict(model.cfg), "step": 0, **extra})
    return path


def test_what_a_run_teaches_and_what_a_fine_tune_keeps():
    assert trained_for(PLAIN, None) == {"infill": False, "controls": False}
    assert trained_for(PLAIN | {"control_rate": 0.5}, None) == {"infill": False,
                                                                  "controls": True}
    start = {"infill": True, "controls": False}
    assert trained_for(PLAIN, start) == {"infill": True, "controls": False}
    # Older checkpoints: the rates say it, unless the run was a fine-tune (then unknown).
    assert learned({"train_config": PLAIN | {"infill_rate": 0.5}})["infill"]
    assert learned({"train_config": PLAIN | {"init_from": "x.pt"}}) is None
    assert learned({}) is None
    assert learned({"learned": start, "train_config": PLAIN}) == start


@pytest.mark.parametrize("flags, rate", [
    (["--infill", "0:1-2"], "infill_rate"),
    (["--density", "0:0-1=high"], "control_rate"),
    (["--polyphony", "0:0-1=low"], "control_rate"),
])
def test_generate_refuses_what_the_model_never_learned(tmp_path, capsys, flags, rate):
    plain = _checkpoint(tmp_path / "plain.pt", train_config=PLAIN,
                        learned=trained_for(PLAIN, None))
    assert load_learned(plain) == {"infill": False, "controls": False}
    prompt = ["--prompt", "tests/fixtures/pop909_004.mid"] if "--infill" in flags else []
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(plain), "--out", str(tmp_path / "out"), "--no-audio",
              *prompt, *flags])
    code = exit_info.value.code  # run_cli exits with the message, or prints it and a status
    err = (code if isinstance(code, str) else capsys.readouterr().err).strip().splitlines()
    assert code != 0 and len(err) == 1
    assert err[0].startswith("error:") and f"train.{rate} 0" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
