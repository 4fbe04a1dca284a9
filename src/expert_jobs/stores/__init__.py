"""stores layer of expert-jobs."""
