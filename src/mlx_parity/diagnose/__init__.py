"""Naming the culprit: trace-level search over the core's knob space (explain) and between two
probes (bisect)."""
