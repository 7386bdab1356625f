"""GitHub: the current job's variables, a small REST client (its errors, payloads, size limits
and retry rules) and safe extraction of the artifacts it downloads."""
