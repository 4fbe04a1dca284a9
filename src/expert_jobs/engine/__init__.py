"""engine layer of expert-jobs."""
