"""Many trainings at once on Ray: a local Ray sized to the cores, or a cluster (optional extra)."""
