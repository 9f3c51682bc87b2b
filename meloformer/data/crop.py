"""Crop a song longer than the row length to a window of bars across ALL its tracks.

The window [b0, b1) keeps every track's tokens in those bars (multitrack structure intact),
plus the header: BOS and each track-opening DRUMS/PROGRAM token. Bars are renumbered from 0;
EOS is kept only when the window reaches the song's end. The conductor's first window bar
restates the time signature and tempo in force there (the grammar wants both in bar 0), so a
cropped song parses like a song that starts at b0.
"""

from __future__ import annotations

import numpy as np

from meloformer.hid import BOS, EOS, META_FIELDS, Encoding, Family

RESTATED = 3  # tokens a window may add: the time signature, POS_0 and the tempo in force


def crop(enc: Encoding, max_len: int, rng: np.random.Generator) -> Encoding:
    """A window of whole bars of `enc` holding at most `max_len` tokens.

    Args:
        enc: the song.
        max_len: token budget, header included.
        rng: picks the window start (uniform over starts whose window is not cut short by
            the song's end).

    Returns:
        `enc` itself when it fits, else the cropped Encoding. In the rare case where no
        single bar fits, one bar with each track's tokens truncated to an equal share.

    Raises:
        ValueError: the header alone (BOS + one token per track) exceeds `max_len`, or no
            bar fits and the rest cannot hold one opener per track.
    """
    if len(enc.ids) <= max_len:
        return enc
    header = (enc.ids == BOS) | (enc.type == Family.TRACK)
    eos = enc.ids == EOS
    body = ~header & ~eos
    budget = max_len - int(header.sum()) - RESTATED
    if budget < 2:
        raise ValueError(f"crop: max_len {max_len} leaves no room beside the song's header")
    n_bars = int(enc.bar[body].max()) + 1 if body.any() else 1
    cum = np.concatenate([[0], np.cumsum(np.bincount(enc.bar[body], minlength=n_bars))])
    b0, b1 = _window(cum, budget, rng)
    if b1 > b0:
        keep = header | (body & (enc.bar >= b0) & (enc.bar < b1)) | (eos & (b1 == n_bars))
    else:
        keep = header | _trimmed_bar(enc, body, b0, budget)
    order = np.flatnonzero(keep)
    if b0 > 0:
        order = _restate_conductor(enc, order, body & (enc.track == 0), b0)
    return _select(enc, order, b0)


def _window(cum: np.ndarray, budget: int, rng: np.random.Generator) -> tuple[int, int]:
    """(b0, b1): the longest run of bars from a random start whose tokens fit `budget`.

    cum[b] = body tokens in bars < b. A window reaching the end also holds EOS (1 token).
    Returns b1 == b0 when no single bar fits.
    """
    n_bars = len(cum) - 1
    starts = np.arange(n_bars)
    ends = np.searchsorted(cum, cum[:-1] + budget, side="right") - 1  # last b1 that fits
    at_end = ends >= n_bars
    ends = np.minimum(ends, n_bars)
    no_eos_room = at_end & (cum[n_bars] - cum[:-1] + 1 > budget)
    ends[no_eos_room] = n_bars - 1
    ok = ends > starts
    if not ok.any():
        b0 = int(rng.integers(n_bars))
        return b0, b0
    # Starts past the first one whose window reaches the end would only give shorter tails.
    reach = np.flatnonzero(ok & (ends == n_bars))
    last = reach[0] if len(reach) else n_bars - 1
    candidates = np.flatnonzero(ok[: last + 1])
    b0 = int(rng.choice(candidates))
    return b0, int(ends[b0])


def _trimmed_bar(enc: Encoding, body: np.ndarray, bar: int, budget: int) -> np.ndarray:
    """Mask of bar `bar`'s tokens with each track cut to an equal share of `budget`, at a
    note boundary: a cut never leaves half a note (a PITCH without its VEL) or an onset
    without a note, so the trimmed bar still parses."""
    in_bar = body & (enc.bar == bar)
    tracks = np.unique(enc.track[in_bar])
    share = budget // max(len(tracks), 1)
    if share < 1:
        raise ValueError(f"crop: a budget of {budget} tokens cannot open the bar of each "
                         f"of {len(tracks)} tracks")
    keep = np.zeros_like(in_bar)
    for t in tracks:
        idx = np.flatnonzero(in_bar & (enc.track == t))
        keep[idx[: _note_boundary(enc.type[idx], share)]] = True
    return keep


def _note_boundary(types: np.ndarray, share: int) -> int:
    """The longest prefix of a track's bar, at most `share` tokens, that ends between notes
    (note := [VEL] PITCH [DUR]): the next token opens an onset, a velocity or a pitch, and
    the last kept one is no POS or VEL waiting for its note. Just the opener (and what
    precedes the first onset, within `share`) when no note fits."""
    if share >= len(types):
        return len(types)
    opens = np.isin(types[1: share + 1], (Family.POSITION, Family.VELOCITY, Family.PITCH))
    dangling = np.isin(types[:share], (Family.POSITION, Family.VELOCITY))
    cuts = np.flatnonzero(opens & ~dangling) + 1  # keep types[:k]
    if len(cuts):
        return int(cuts[-1])
    onsets = np.flatnonzero(types == Family.POSITION)
    return max(1, min(share, int(onsets[0]) if len(onsets) else share))  # keep the opener


def _restate_conductor(
    enc: Encoding, order: np.ndarray, conductor: np.ndarray, b0: int
) -> np.ndarray:
    """`order` with conductor bar b0 rewritten as: opener, TS in force, POS_0 TEMPO in force,
    then its own tempo changes. Restated tokens are copies of earlier tokens of the song."""
    own = np.flatnonzero(conductor & (enc.bar == b0))
    if len(own) == 0:
        return order
    earlier = conductor & (enc.bar < b0)
    is_ts, is_tempo = enc.type == Family.TIME_SIG, enc.type == Family.TEMPO
    rest = [i for i in own[1:] if not is_ts[i]]
    ts = own[1:][is_ts[own[1:]]]
    ts = ts[:1] if len(ts) else np.flatnonzero(earlier & is_ts)[-1:]
    head = [own[0], *ts]
    opens_with_tempo = len(rest) > 1 and enc.pos[rest[0]] == 0 and is_tempo[rest[1]]
    if not opens_with_tempo:
        tempo = np.flatnonzero(earlier & is_tempo)[-1:]
        pos0 = np.flatnonzero(conductor & (enc.type == Family.POSITION) & (enc.pos == 0))[:1]
        if len(tempo) and len(pos0):
            head += [pos0[0], tempo[0]]
    before, after = order[order < own[0]], order[order > own[-1]]
    return np.concatenate([before, np.asarray(head + rest, dtype=np.int64), after])


def _select(enc: Encoding, order: np.ndarray, b0: int) -> Encoding:
    """Tokens `order` of `enc`, bars renumbered so the window starts at bar 0 (the header and
    tokens restated from earlier bars go to bar 0, restated tempos to position 0)."""
    header = (enc.ids == BOS) | (enc.type == Family.TRACK)
    arrays = {name: getattr(enc, name)[order] for name in ("ids", *META_FIELDS)}
    bar = arrays["bar"].astype(np.int64) - b0
    restated = bar < 0
    bar = np.where(header[order] | restated, 0, bar)
    arrays["bar"] = bar.astype(enc.bar.dtype)
    arrays["pos"] = np.where(restated, 0, arrays["pos"]).astype(enc.pos.dtype)
    body_bars = bar[~header[order]]
    return Encoding(
        **arrays,
        n_bars=int(body_bars.max()) + 1 if len(body_bars) else 1,
        n_tracks=enc.n_tracks,
        n_notes=int((arrays["type"] == Family.PITCH).sum()),
    )
