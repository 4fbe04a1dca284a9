"""api layer of expert-jobs."""
