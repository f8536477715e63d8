"""Your mapping customisations: the only file you need to edit to change what Customer.io receives.

`build_mapping` gets the defaults (identifier strategy already read from CUSTOMERIO_IDENTIFIER)
and returns the configuration the ingest function uses. Examples are in the README
("Customising the mapping"); by default nothing is changed.
"""

from dodo_cio.mapping.mapper import MappingConfig


def build_mapping(defaults: MappingConfig) -> MappingConfig:
    return defaults
