"""The largest magnitudes a command may lead to.

Unit counts travel as 32-bit integers and money as 64-bit cents in every
contract (events and views), so a decision that would exceed them is refused
up front: an accepted command must always be expressible as its events.
"""

from __future__ import annotations

MAX_UNITS = 2**31 - 1
MAX_CENTS = 2**63 - 1
