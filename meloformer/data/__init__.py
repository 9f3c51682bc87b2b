"""Data stages: discover MIDI files, preprocess them into HID token shards, validate the shards.

Each stage is the function of the same name in the module of the same name
(`meloformer.data.discover.discover`, …); they are not re-exported here, so the module names
stay modules. `meloformer.data.validate` is the only module that imports great_expectations.
"""

from meloformer.data.config import DiscoverConfig, PreprocessConfig, ValidateConfig
from meloformer.data.controls import read_control_bins
from meloformer.data.crop import crop
from meloformer.data.manifest import read_manifest
from meloformer.data.meta import meta_path, pitch_ranges, read_pitch_ranges
from meloformer.data.profile import CorpusProfile, opener_program, read_profile
from meloformer.data.shards import ShardError, ShardReader, SongIndex, build_index
from meloformer.data.worker import ShardDone

__all__ = [
    "CorpusProfile",
    "DiscoverConfig",
    "PreprocessConfig",
    "ShardDone",
    "ShardError",
    "ShardReader",
    "SongIndex",
    "ValidateConfig",
    "build_index",
    "crop",
    "meta_path",
    "opener_program",
    "pitch_ranges",
    "read_control_bins",
    "read_manifest",
    "read_pitch_ranges",
    "read_profile",
]
