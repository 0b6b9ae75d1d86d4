"""The foundation every layer stands on: settings, errors, metrics, health.

Nothing here imports another package of the product; ``make lint`` checks it.
"""
