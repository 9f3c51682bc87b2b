"""meloformer.io (atomic writes, json_ready) and meloformer.device (resolve_device)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from meloformer.device import resolve_device
from meloformer.io import TMP_SUFFIX, atomic_path, json_ready, write_json


@dataclass(frozen=True)
class _Cfg:
    sizes: tuple[int, ...] = (1, 2)
    name: str = "x"
    rate: float | None = None


def test_json_ready_gives_plain_json_values():
    value = {"cfg": _Cfg(), "n": np.int64(3), "x": np.float32(0.5), "a": np.arange(3),
             "path": Path("a/b"), 7: (np.bool_(True), [np.int8(1)])}
    out = json_ready(value)
    assert out == {"cfg": {"sizes": [1, 2], "name": "x", "rate": None}, "n": 3, "x": 0.5,
                   "a": [0, 1, 2], "path": "a/b", "7": [True, [1]]}
    assert type(out["n"]) is int and type(out["7"][0]) is bool
    assert json.loads(json.dumps(out)) == out  # already plain: a JSON round trip changes nothing


def test_atomic_path_leaves_the_old_file_on_error(tmp_path):
    target = tmp_path / "sub" / "f.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert not list(target.parent.glob(f"*{TMP_SUFFIX}"))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:2") == torch.device("cuda", 2)
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
