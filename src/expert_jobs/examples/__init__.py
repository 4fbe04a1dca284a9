"""examples layer of expert-jobs."""
