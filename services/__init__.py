"""Use cases: each validates, calls brokers, records the journal and logs, and commits once."""
