"""The benchmark suite (`make bench`): figures and ratios, not timed tests."""
