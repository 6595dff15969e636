"""Benchmarks and accuracy metrics against synthetic ground truth (never shipped in the extension)."""
