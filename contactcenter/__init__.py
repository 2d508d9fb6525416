"""Application shell: configuration, logging and the ``contactcenter`` command line."""

from contactcenter.config import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
