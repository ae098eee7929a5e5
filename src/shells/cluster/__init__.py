"""What makes many machines one Shells: Kubernetes for membership and leader election (Leases)."""
