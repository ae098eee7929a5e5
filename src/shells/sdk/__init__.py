"""The Python SDK: ``from shells.sdk import Shells``."""

from .client import Shells

__all__ = ["Shells"]
