"""Benchmarks: recostate against the code users would otherwise write.

Run ``python -m benchmarks`` (``--quick`` for a one-minute pass, ``--redis-url``
for a server of your own). See ``docs/performance.md``.
"""
