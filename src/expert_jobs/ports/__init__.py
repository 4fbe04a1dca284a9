"""ports layer of expert-jobs."""
