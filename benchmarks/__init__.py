"""incident_flow's benchmark suite: each case against a baseline measured in the same run.

Run ``python -m benchmarks`` (full, for docs/performance.md) or ``python -m benchmarks --quick``.
The cases, their baselines and their targets are described in docs/performance.md.
"""
