"""Datasets: the IDX format, downloads with checksums, and the named datasets mnistlab knows."""
