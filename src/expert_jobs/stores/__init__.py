"""Job store adapters: memory (tests, experiments), SQLite (embedded default), PostgreSQL (many workers)."""
