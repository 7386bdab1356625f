"""The generated GitHub Actions workflow: its settings and its generator."""
