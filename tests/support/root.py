"""Unit tests that need root (ownership, device nodes, other users): skipped with the reason printed
when ``make unit`` runs as a user without it; CI and ``make test`` run as root and run them."""

from __future__ import annotations

import os

import pytest


def needs_root(why: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(os.geteuid() != 0, reason=f"needs root: {why}")
