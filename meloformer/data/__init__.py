"""Data stages: discover MIDI files, preprocess them into HID token shards, validate the shards.

Each stage is the function of the same name in the module of the same name
(`meloformer.data.discover.discover`, …); they are not re-exported here, so the module names
stay modules. `meloformer.data.validate` is the only module that imports great_expectations.
"""

from meloformer.data.config import DiscoverConfig, PreprocessConfig, ValidateConfig

__all__ = ["DiscoverConfig", "PreprocessConfig", "ValidateConfig"]
