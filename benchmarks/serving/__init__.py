"""Benchmarks of jaxseq-serve run as modules: python -m benchmarks.serving.<name>."""
