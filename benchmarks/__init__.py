"""Benchmark scripts for jaxseq (not tests): each writes JSON with the hardware."""
