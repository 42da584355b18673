"""Starts and stops the real components (Redis, Triton, the gateway) as local processes."""
