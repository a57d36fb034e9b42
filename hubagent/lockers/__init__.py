"""lockers."""
