"""The experiments behind ``docs/results.md`` and the bundled models.

Run from a checkout; ``scripts/`` holds their entry points.
"""
