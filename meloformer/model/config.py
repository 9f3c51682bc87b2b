"""ModelConfig: the model's shape and its attention rules, as one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import lru_cache

from meloformer.errors import ConfigError, check

ATTENTION_KINDS = ("auto", "flex", "sdpa", "dense")
SUMMARY_ORDERS = ("auto", "bar", "track")

# Named sizes (layers / width / heads / kv heads); head_dim is 64 in all of them.
MODEL_SIZES: dict[str, dict[str, int]] = {
    "small": dict(n_layer=6, n_embd=256, n_head=4, n_kv_head=2),
    "base": dict(n_layer=12, n_embd=512, n_head=8, n_kv_head=4),
    "large": dict(n_layer=16, n_embd=768, n_head=12, n_kv_head=4),
    "xlarge": dict(n_layer=24, n_embd=1024, n_head=16, n_kv_head=4),
}


@lru_cache(maxsize=1)
def default_vocab_size() -> int:
    """Size of the default HID vocabulary, len(Vocab(HIDConfig()))."""
    from meloformer.hid import HIDConfig, Vocab

    return len(Vocab(HIDConfig()))


def _find_multiple(n: int, k: int) -> int:
    return n if n % k == 0 else n + k - n % k


@dataclass(frozen=True)
class ModelConfig:
    """Every knob of MeloFormer. Derived fields are filled in `__post_init__`."""

    n_layer: int = 6
    n_embd: int = 256
    n_head: int = 4
    n_kv_head: int = 2
    """Key/value heads (GQA); must divide n_head."""
    vocab_size: int = field(default_factory=default_vocab_size)
    intermediate_size: int = 0
    """SwiGLU hidden width; 0 = LLaMA's rule, 8/3 * n_embd rounded up to a multiple of 256."""
    n_programs: int = 130
    """Program embedding rows: 0..127 melodic, 128 drums, 129 BOS/conductor."""
    max_tracks: int = 65
    """Track-index embedding rows: conductor (0) + HIDConfig.max_tracks instrument tracks."""
    rope_base: float = 10000.0
    rope_split: tuple[int, int, int] = (1, 1, 2)
    """Share of head_dim rotated by (bar, onset position, index in the (track, bar) cell)."""
    norm_eps: float = 1e-5
    dropout: float = 0.0
    init_std: float = 0.02
    fine_offsets: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32)
    """Own-track bars seen note by note, as offsets back from the query's bar (Museformer)."""
    cross_window: int = 1
    """Bars b-w..b+w of tracks already written are seen note by note."""
    conductor_full: bool = True
    """RR: instrument tokens see the whole conductor track (tempo, time signatures, chord
    labels of every bar) note by note, as they see the header; bar-major order puts it with
    the header (block density +0.00..0.01 at 8192). False: only its bars b-w..b+w, like any
    earlier track, and the rest through summaries."""
    summary_track_history: bool = False
    """SS option: a summary also reads the earlier summaries of its own track."""
    summarize_empty: bool = False
    """Give empty bars (a lone BAR token) a summary too; off: they carry nothing and cost keys."""
    type_rule: bool = False
    """The seed's token-type rule on cross-cell RR pairs (off: it removes no blocks)."""
    attention: str = "auto"
    """Executor: flex (compiled FlexAttention), sdpa (the dense mask over the rows in clock
    order; on CPU torch's causal flash kernel with the mask on top), dense (plain causal
    baseline, no summaries), auto (flex on CUDA, sdpa on CPU where flex has no backward)."""
    block_size: int = 128
    """FlexAttention block size (queries and keys) on CUDA. 128 is the Triton tile; 64 trains
    only with max_autotune (docs/model.md)."""
    cpu_block_size: int = 16
    """FlexAttention block size on CPU (forward only). The CPU kernel pays per non-empty
    block area, and at 8192 tokens 16-blocks cover 0.20 of causal, 128-blocks 0.59."""
    summary_order: str = "auto"
    """Summary slots of the flex call in (bar, track) or (track, bar) order; "auto": track
    order for blocks <= 32 (a query block then holds one or two tracks and RS reads a prefix),
    bar order above."""
    bar_major: bool = True
    """Run flex on tokens gathered into bar-major order (at 8192 tokens: density 0.59 vs 0.62
    in HID order with 128-blocks, 0.20 vs 0.21 with 16-blocks)."""
    length_bucket: int = 512
    """Regular + summary length is padded to a multiple of this (one compile per bucket)."""
    head_dim: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        # ConfigError names the field: "params.yaml: model.<field>: ..." or "--model <field>".
        check("attention", self.attention, self.attention in ATTENTION_KINDS,
              f"must be one of {list(ATTENTION_KINDS)}")
        check("summary_order", self.summary_order, self.summary_order in SUMMARY_ORDERS,
              f"must be one of {list(SUMMARY_ORDERS)}")
        check("n_embd", self.n_embd, self.n_embd % self.n_head == 0,
              f"must be divisible by n_head ({self.n_head})")
        check("n_kv_head", self.n_kv_head, self.n_head % self.n_kv_head == 0,
              f"must divide n_head ({self.n_head})")
        head_dim = self.n_embd // self.n_head
        check("rope_split", self.rope_split, head_dim % (2 * sum(self.rope_split)) == 0,
              f"must split head_dim ({head_dim}) into even parts")
        check("fine_offsets", self.fine_offsets, all(o >= 1 for o in self.fine_offsets),
              "must all be >= 1")
        check("cross_window", self.cross_window, self.cross_window >= 0, "must be >= 0")
        object.__setattr__(self, "head_dim", head_dim)
        if self.intermediate_size == 0:
            object.__setattr__(
                self, "intermediate_size", _find_multiple(8 * self.n_embd // 3, 256)
            )
        object.__setattr__(self, "fine_offsets", tuple(sorted(set(self.fine_offsets))))

    @classmethod
    def from_name(cls, name: str, **overrides) -> ModelConfig:
        """A named size (MODEL_SIZES) with field overrides.

        Raises:
            ConfigError: unknown size name or unknown field.
        """
        check("model_size", name, name in MODEL_SIZES,
              f"unknown model size; known: {sorted(MODEL_SIZES)}")
        known = {f.name for f in fields(cls) if f.init}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError("ModelConfig", f"unknown fields {sorted(unknown)}")
        return cls(**{**MODEL_SIZES[name], **overrides})

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed (derived fields recomputed)."""
        keep = 0 if "n_embd" in changes else self.intermediate_size
        changes.setdefault("intermediate_size", keep)
        return replace(self, **changes)
