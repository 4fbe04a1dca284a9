"""``python -m expert_jobs.transports.cli``."""

from expert_jobs.transports.cli import main

main()
