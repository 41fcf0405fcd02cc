"""The AITBC node process: configuration, CLI, LevelDB store, block producer."""

__version__ = "0.4.0"
