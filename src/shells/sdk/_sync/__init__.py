"""The synchronous SDK, generated from ``shells.sdk._async`` by ``scripts/unasync.py``: edit those."""
