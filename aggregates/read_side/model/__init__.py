"""Pure projection logic: what each event changes in a read model. No IO.

Each module turns decoded events into changes (``convert``, raising
``InvalidEventError`` for events a projection can never apply) and folds a
batch of changes into one write per row, guarded by the aggregate version, so
that applying the same batch twice has the effect of applying it once.
"""
