"""service layer of expert-jobs."""
