"""The recompile policy of compiled flex attention (and of the compiled blocks).

Shapes are static by construction: the loader pads every row to a length bucket and every
flex call to a multiple of lcm(block, length_bucket), so one graph serves each
(micro-batch size, bucket) pair. Dynamo's default limit of 8 graphs per code object is below
what one run legitimately meets (3 length buckets x up to 4 micro-batch sizes across the
phases and OOM halvings x train/eval), and past the limit flex does not fail: it silently
runs the O(L^2) eager path. So the library, not each caller, sets a limit that holds every
bucket, and makes hitting it an error instead of a silent slowdown.
"""

from __future__ import annotations

import torch._dynamo

# 3 buckets x 4 micro-batch sizes x 2 grad modes x 2 dtypes = 48 graphs, with room to spare.
RECOMPILE_LIMIT = 64


def allow_recompiles(limit: int = RECOMPILE_LIMIT) -> None:
    """Raise dynamo's per-code-object recompile limit to at least `limit` (never lower it)
    and make hitting it an error rather than a silent fall back to eager."""
    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, limit)
    cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, 4 * limit)
    cfg.fail_on_recompile_limit_hit = True


def graphs_needed(buckets: int, batch_sizes: int, modes: int = 2) -> int:
    """Graphs one run of flex may compile: one per (bucket, micro-batch size, grad mode)."""
    return buckets * batch_sizes * modes
