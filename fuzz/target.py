"""The fuzz target: any bytes must end as HID tokens that decode, or as a typed MidiError.

Kept free of atheris so the regression test (tests/test_fuzz.py) replays saved inputs without
it. Anything else escaping `check` (another exception type, an error not naming the file, a
token sequence the decoder refuses) is a finding.
"""

from __future__ import annotations

from meloformer.hid.config import HIDConfig
from meloformer.hid.decode import decode
from meloformer.hid.encode import encode_bytes, vocab_for
from meloformer.hid.errors import MidiError

NAME = "fuzz.mid"
CFG = HIDConfig()


def check(data: bytes) -> str:
    """Encode `data`, and decode what it encodes to.

    Returns:
        "tokens", or the kind of the MidiError that refused it ("parse", "too-large"...).
    Raises:
        AssertionError: a MidiError that does not start with the file name.
        Anything else the codec raises: a bug (MidiErrors are the only allowed failure).
    """
    try:
        enc = encode_bytes(data, CFG, NAME)
    except MidiError as e:
        assert str(e).startswith(f"{NAME}: ") and e.reason, f"untyped or unnamed error: {e!r}"
        return e.kind
    decode(enc.ids, vocab_for(CFG))  # the codec's own tokens must always decode
    return "tokens"
