"""Stage 2, mapping: what Customer.io should know about a Dodo event, as API-neutral ops.

  mapper          `map_event`, `MappingConfig`, `Op`, the identifier strategies: the mapping itself
  attributes      event and profile attributes per payload
  profile         the subscription fields a person's profile carries
  payload_fields  reading Dodo's fields safely (sizes, secrets, money, times)
  money           minor units to decimal amounts by currency exponent
  limits          Customer.io's size limits, and fitting an op inside them

`customize.py` imports from `dodo_cio.mapping.mapper` (until 0.1: `dodo_cio.mapping`, which is now
this package); the names below keep `from dodo_cio.mapping import MappingConfig, Op` working.
"""

from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig, MappingConfigError, Op, map_event

__all__ = ["IdentifierStrategy", "MappingConfig", "MappingConfigError", "Op", "map_event"]
