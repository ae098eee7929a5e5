"""The durable layer: object storage (a local directory or any S3-compatible bucket)."""
