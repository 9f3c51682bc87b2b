"""The model: RoPE, parameter counts, gradients everywhere, causality on a real song."""

from __future__ import annotations

import pytest
import torch
from test_layout import real_songs, synthetic_song

from meloformer.model.batch import IGNORE, Batch
from meloformer.model.config import MODEL_SIZES, ModelConfig, default_vocab_size
from meloformer.model.rope import MultiAxisRoPE, apply_rope
from meloformer.model.transformer import MeloFormer

# Parameters with the default HID vocabulary (docs/model.md has the table).
PARAM_COUNTS = {
    "small": 5_039_104,
    "base": 38_395_904,
    "large": 101_640_192,
    "xlarge": 271_851_520,
}


def test_rope_depends_only_on_offsets():
    torch.manual_seed(0)
    rope = MultiAxisRoPE(64, (1, 1, 2))
    q, k = torch.randn(1, 1, 1, 64), torch.randn(1, 1, 1, 64)

    def score(cq, ck):
        cos, sin = rope(torch.tensor([[cq, ck]]))
        rq = apply_rope(q, cos[:, :, :1], sin[:, :, :1])
        rk = apply_rope(k, cos[:, :, 1:], sin[:, :, 1:])
        assert torch.allclose(rq.norm(), q.norm(), atol=1e-5)  # a rotation
        return float((rq * rk).sum())

    base = score((3, 5, 2), (1, 9, 0))
    assert base == pytest.approx(score((40, 17, 11), (38, 21, 9)), abs=1e-4)
    assert base != pytest.approx(score((40, 17, 11), (38, 21, 10)), abs=1e-3)
    assert base != pytest.approx(score((4, 5, 2), (1, 9, 0)), abs=1e-3)  # bar axis matters


@pytest.mark.parametrize("name", list(MODEL_SIZES))
def test_parameter_counts(name):
    with torch.device("meta"):
        model = MeloFormer(ModelConfig.from_name(name))
    assert model.cfg.vocab_size == default_vocab_size()
    assert model.num_params() == PARAM_COUNTS[name]


@pytest.mark.parametrize("attention", ["sdpa", "dense"])
def test_every_parameter_gets_a_gradient(attention):
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig.from_name("small", n_layer=2, attention=attention))
    batch = Batch.from_encodings([[synthetic_song(1), synthetic_song(2)], [synthetic_song(3)]])
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []
    assert (model.summary_emb is None) == (attention == "dense")


def test_causality_on_a_real_song():
    """Changing token j (or cutting everything from j on) changes no logit before j."""
    song = max(real_songs(n_bars=6), key=lambda s: int(s.track.max()))
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig.from_name("small", n_layer=2)).eval()
    batch = Batch.from_encodings([[song]])
    with torch.no_grad():
        full = model(batch)
    # j: the ends of the first cells of each later track (their summaries complete at j),
    # and the middle of the busiest later track.
    track = batch.track[0]
    busiest = (track == int(torch.bincount(track[track >= 2]).argmax())).nonzero().flatten()
    ends = [int((track == t).nonzero()[3]) for t in range(2, int(track.max()) + 1)]
    for j in [*ends, int(busiest[len(busiest) // 2])]:
        changed = Batch(**{**batch.__dict__, "ids": batch.ids.clone()})
        changed.ids[0, j] = (changed.ids[0, j] + 7) % model.cfg.vocab_size
        cut = Batch(**{name: value[:, :j] for name, value in batch.__dict__.items()})
        with torch.no_grad():
            other, short = model(changed), model(cut)
        assert torch.equal(full[:, :j], other[:, :j]), j
        torch.testing.assert_close(full[:, :j], short, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(full[:, j:], other[:, j:])  # the change is seen afterwards


def test_loss_skips_ignored_targets():
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig.from_name("small", n_layer=1))
    batch = Batch.from_encodings([[synthetic_song(4)]])
    logits = model(batch)
    keep = batch.targets != IGNORE
    want = torch.nn.functional.cross_entropy(logits[keep], batch.targets[keep])
    torch.testing.assert_close(model.loss(batch), want)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="unknown model size"):
        ModelConfig.from_name("huge")
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_name("small", n_layers=3)
    with pytest.raises(ValueError, match="attention"):
        ModelConfig(attention="sparse")
    with pytest.raises(ValueError, match="summary_order"):
        ModelConfig(summary_order="hid")
    cfg = ModelConfig.from_name("base", n_layer=2)
    assert (cfg.head_dim, cfg.intermediate_size, cfg.n_kv_head) == (64, 1536, 4)
    model = MeloFormer(ModelConfig.from_name("small", n_layer=1, max_tracks=3))
    batch = Batch.from_encodings([[synthetic_song(5, n_tracks=4)]])
    with pytest.raises(ValueError, match="Batch.track"):
        model(batch)
