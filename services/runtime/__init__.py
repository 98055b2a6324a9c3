"""Runtime: start-up work and the scheduler."""
