"""testing layer of expert-jobs."""
