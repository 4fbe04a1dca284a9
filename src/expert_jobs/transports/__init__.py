"""transports layer of expert-jobs."""
