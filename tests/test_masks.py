"""The mask against an oracle: a plain Python loop over (query, key) pairs, straight from the
rules, on synthetic and real HID layouts (tracks, empty bars, packing, ragged rows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_layout import real_songs, synthetic_song

from meloformer.hid.vocab import BOS, Family
from meloformer.model.batch import Batch
from meloformer.model.block_mask import segment_block_mask, segment_dense_mask
from meloformer.model.cells import find_cells
from meloformer.model.config import ModelConfig
from meloformer.model.layout import build_layout
from meloformer.model.masks import MaskMod, mask_features, meloformer_mask
from meloformer.model.plan import build_plan

# The seed's type rule, spelled out independently of masks.type_table (query -> keys).
T_, P_, L_, V_ = Family.POSITION, Family.PITCH, Family.DURATION, Family.VELOCITY
TYPE_RULE = {T_: {T_, P_}, P_: {T_, P_}, L_: set(), V_: {V_}}


def dense_mask(mask_mod: MaskMod, B: int, L: int, device, rows: int = 1024) -> torch.Tensor:
    """The mask_mod evaluated at every (q, kv) pair, (B, 1, L, L) bool: the slow, direct
    counterpart of the segment builders (query rows in chunks of `rows`)."""
    b = torch.arange(B, device=device)[:, None, None]
    h = torch.zeros((), dtype=torch.long, device=device)
    kv = torch.arange(L, device=device)[None, None, :]
    parts = []
    for q0 in range(0, L, rows):
        q = torch.arange(q0, min(q0 + rows, L), device=device)[None, :, None]
        parts.append(mask_mod(b, h, q, kv).expand(B, q.shape[1], L))
    return torch.cat(parts, dim=1)[:, None]


def oracle(batch: Batch, cfg: ModelConfig, slots: list[list[tuple | None]]) -> np.ndarray:
    """The mask by the rules, (B, L, L) bool, rows/cols = HID tokens then summary `slots`.

    slots[r][s] is the (doc, track, bar, fill) of summary slot s of row r (None = padding
    slot); the oracle checks that they are exactly the cells the rules summarise.
    """
    B, T = batch.shape
    out = np.zeros((B, T + len(slots[0]), T + len(slots[0])), dtype=bool)
    for r in range(B):
        _oracle_row(batch, r, cfg, slots[r], out[r])
    return out


def _oracle_row(batch: Batch, r: int, cfg: ModelConfig, slots: list, out: np.ndarray) -> None:
    T = batch.shape[1]
    doc, track, bar, typ, ids = (
        getattr(batch, f)[r].tolist() for f in ("doc", "track", "bar", "type", "ids")
    )
    header = [doc[i] >= 0 and (ids[i] == BOS or typ[i] == Family.TRACK) for i in range(T)]
    # Infilling: a document's fill section starts at its first FILL_MARK (FILL_START) token.
    fill = [
        doc[i] >= 0 and any(doc[j] == doc[i] and typ[j] == Family.FILL_MARK for j in range(i + 1))
        for i in range(T)
    ]
    cell = [
        (doc[i], track[i], bar[i], fill[i]) if doc[i] >= 0 and not header[i] else None
        for i in range(T)
    ]
    members: dict[tuple, list[int]] = {}
    for i, c in enumerate(cell):
        if c is not None:
            members.setdefault(c, []).append(i)
    summarised = {c for c, m in members.items() if len(m) > 1 or cfg.summarize_empty}
    real_slots = [s for s in slots if s is not None]
    assert set(real_slots) == summarised and len(real_slots) == len(summarised)

    def near(qc, kc):
        if qc[0] != kc[0]:
            return False
        offsets = (0, *cfg.fine_offsets)
        if qc[3]:  # a fill reads its neighbours both ways: later bars, later tracks
            offsets += tuple(-o for o in cfg.fine_offsets)
        own = qc[1] == kc[1] and qc[2] - kc[2] in offsets
        conductor = cfg.conductor_full and kc[1] == 0 < qc[1]
        other = kc[1] < qc[1] or (qc[3] and kc[1] > qc[1])
        return own or conductor or (other and abs(qc[2] - kc[2]) <= cfg.cross_window)

    def typed(i, j):
        if not cfg.type_rule or cell[i] == cell[j] or typ[i] not in TYPE_RULE:
            return True
        return typ[j] not in TYPE_RULE or typ[j] in TYPE_RULE[typ[i]]

    for i in range(T):
        out[i, i] = True
        if doc[i] < 0:
            continue
        for j in range(i):  # RR: causal in HID position
            if doc[j] == doc[i] and (
                header[j]
                or (cell[i] is not None and cell[j] is not None and near(cell[i], cell[j]))
            ):
                out[i, j] = typed(i, j)
        for s, key in enumerate(slots):  # RS: complete and not seen note by note
            if key is not None and key[0] == doc[i] and members[key][-1] < i:
                out[i, T + s] = cell[i] is None or not near(cell[i], key)
    for s, key in enumerate(slots):
        out[T + s, T + s] = True
        if key is None:
            continue
        for j in members[key]:  # SR: the tokens of its own cell
            out[T + s, j] = True
        for s2, key2 in enumerate(slots):  # SS history option
            if cfg.summary_track_history and key2 is not None and key2[:2] == key[:2]:
                # causal too: a fill's summary comes after every plain cell's
                out[T + s, T + s2] |= key2[2] < key[2] and members[key2][-1] <= members[key][-1]


def slot_keys(lay, cells) -> list[list[tuple | None]]:
    """(doc, track, bar, fill) of each summary slot of a layout."""
    out = []
    for r in range(lay.summary_cell.shape[0]):
        row = []
        for c, ok in zip(lay.summary_cell[r].tolist(), lay.summary_valid[r].tolist(), strict=True):
            row.append(
                (
                    int(cells.doc[r, c]),
                    int(cells.track[r, c]),
                    int(cells.bar[r, c]),
                    bool(cells.fill[r, c]),
                )
                if ok
                else None
            )
        out.append(row)
    return out


def synthetic_batch() -> Batch:
    """Three rows: one song, two packed songs, a short ragged row."""
    a, b, c = synthetic_song(10, 3, 5), synthetic_song(11, 2, 3), synthetic_song(12, 4, 2)
    return Batch.from_encodings([[a], [b, c], [c]])


CONFIGS = {
    "default": ModelConfig(),
    "ss-history": ModelConfig(summary_track_history=True),
    "narrow": ModelConfig(fine_offsets=(3,), cross_window=0),
    "wide": ModelConfig(fine_offsets=(4,), cross_window=2),
    "empty-summaries": ModelConfig(summarize_empty=True, cross_window=2),
    "type-rule": ModelConfig(type_rule=True),
    "conductor-window": ModelConfig(conductor_full=False),
}


def check_hid_order(batch: Batch, cfg: ModelConfig) -> None:
    """Direct mask_mod evaluation and the segment expansion both equal the oracle."""
    cells = find_cells(batch, summarize_empty=cfg.summarize_empty)
    lay = build_layout(batch, cells, multiple=8)
    want = torch.from_numpy(oracle(batch, cfg, slot_keys(lay, cells)))
    mask_mod = meloformer_mask(lay, cfg)
    direct = dense_mask(mask_mod, batch.shape[0], lay.length, "cpu")[:, 0]
    assert torch.equal(direct, want)
    fast = segment_dense_mask(mask_mod, mask_features(lay, cfg), lay.clock)[:, 0]
    assert torch.equal(fast, want)
    # The CPU executor's plan: rows sorted by clock, where the whole mask is causal.
    plan = build_plan(batch, cfg, "sdpa", "cpu")
    assert (plan.layout.clock.gather(1, plan.order).diff() >= 0).all()
    moved = torch.stack([w[o][:, o] for w, o in zip(want, plan.order, strict=True)])
    assert torch.equal(plan.mask[:, 0], moved)
    assert not moved.triu(1).any()


def check_block_mask(batch: Batch, cfg: ModelConfig, block: int, summaries: str = "bar") -> None:
    """The bar-major BlockMask equals the oracle's blocks (non-empty and full)."""
    cells = find_cells(batch, summarize_empty=cfg.summarize_empty)
    lay = build_layout(
        batch, cells, True, block, conductor_first=cfg.conductor_full, summary_order=summaries
    )
    want = torch.from_numpy(oracle(batch, cfg, slot_keys(lay, cells)))
    T, L = lay.n_regular, lay.length
    order = torch.cat([lay.perm, torch.arange(T, L).expand(len(lay.perm), -1)], dim=1)
    want = torch.stack([w[o][:, o] for w, o in zip(want, order, strict=True)])  # execution order
    mask_mod = meloformer_mask(lay, cfg)
    assert torch.equal(dense_mask(mask_mod, batch.shape[0], L, "cpu")[:, 0], want)
    blocks = segment_block_mask(mask_mod, mask_features(lay, cfg), lay.clock, block)
    tiles = want.view(-1, L // block, block, L // block, block)
    assert torch.equal(blocks.to_dense()[:, 0].bool(), tiles.any(4).any(2))
    full = torch.zeros_like(want[:, : L // block, : L // block])
    for r in range(len(want)):
        for q in range(L // block):
            n = int(blocks.full_kv_num_blocks[r, 0, q])
            full[r, q, blocks.full_kv_indices[r, 0, q, :n].long()] = True
    assert torch.equal(full, tiles.all(4).all(2))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_mask_matches_oracle_synthetic(name):
    check_hid_order(synthetic_batch(), CONFIGS[name])


@pytest.mark.parametrize("name", ["default", "ss-history", "type-rule", "conductor-window"])
@pytest.mark.parametrize("summaries", ["bar", "track"])
def test_block_mask_matches_oracle_synthetic(name, summaries):
    check_block_mask(synthetic_batch(), CONFIGS[name], block=16, summaries=summaries)


@pytest.mark.parametrize("seed", range(4))
def test_random_layouts(seed):
    rng = np.random.default_rng(seed)
    rows = [
        [
            synthetic_song(
                100 * seed + k, int(rng.integers(1, 5)), int(rng.integers(1, 6)), p_empty=0.5
            )
            for k in range(int(rng.integers(1, 3)))
        ]
        for _ in range(2)
    ]
    batch = Batch.from_encodings(rows)
    check_hid_order(batch, ModelConfig(cross_window=int(rng.integers(0, 3))))
    check_block_mask(batch, ModelConfig(), block=8, summaries=("bar", "track")[seed % 2])


def test_mask_matches_oracle_real_songs():
    songs = real_songs()
    batch = Batch.from_encodings([songs[:2], songs[2:3] or songs[:1]])
    check_hid_order(batch, ModelConfig())
    check_block_mask(batch, ModelConfig(), block=32)
    check_block_mask(batch, ModelConfig(), block=16, summaries="track")  # the CPU flex layout


def test_no_future_track_leaks():
    """The old bug: nothing of a later track (tokens or summaries) reaches an earlier one."""
    batch = Batch.from_encodings([real_songs()[:1]])
    cells = find_cells(batch)
    lay = build_layout(batch, cells, multiple=8)
    mask = segment_dense_mask(
        meloformer_mask(lay, ModelConfig()), mask_features(lay, ModelConfig()), lay.clock
    )[0, 0]
    T = lay.n_regular
    track = torch.cat([batch.track[0], cells.track[0, lay.summary_cell[0]]])
    sees_later = mask & (track[None, :] > track[:, None])
    assert not sees_later[:T].any()  # regular queries
    clock = lay.clock[0]
    assert not (mask & (clock[None, :] > clock[:, None])).any()  # nothing from the future
