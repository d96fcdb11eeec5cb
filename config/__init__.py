"""Settings: one `Settings` object, built once and passed down."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
