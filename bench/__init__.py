"""Benchmarks: each module prints figures, with ratios against a baseline measured in the same run.

Run `python -m bench` for the list, `python -m bench NAME --help` for one benchmark's options.
"""
