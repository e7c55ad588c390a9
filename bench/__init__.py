"""Benchmarks: each module has ``main()`` and prints ratios against a baseline measured in the same run."""
