"""Stream processors: the Faust app, the command processor and the process managers.

The only package that imports Faust. Agents orchestrate (decode, read table,
decide, evolve, write table, send); the rules live in ``aggregates``.
"""
