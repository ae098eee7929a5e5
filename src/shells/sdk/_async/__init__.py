"""The SDK's source: ``scripts/unasync.py`` derives ``shells.sdk._sync`` from these modules."""
