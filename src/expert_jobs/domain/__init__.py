"""domain layer of expert-jobs."""
