"""Benchmarks: `./nb bench` runs them all and prints a table; figures also go to bench/results/."""
