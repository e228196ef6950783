"""Bench stage: accuracy, latency, memory and energy of artifacts, and the report."""
