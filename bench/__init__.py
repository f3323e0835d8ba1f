"""Benchmarks: `make bench` runs them all; each writes JSON under bench/results/ and prints a table."""
