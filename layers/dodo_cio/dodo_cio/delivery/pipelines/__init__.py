"""Customer.io's Data Pipelines API as a second destination (issue 12), chosen by CUSTOMERIO_API.

`render` says the mapping's ops as Pipelines calls; `client` sends them in strict mode and
classifies the answers like the Track client's. What the ingest and retry paths use is in
`dodo_cio.delivery.destination` and `dodo_cio.configuration.settings`; nothing there needs to know which API it is.
"""

from dodo_cio.delivery.pipelines.client import (
    PIPELINES_HOSTS,
    PipelinesClient,
    pack,
    pipelines_base_url,
    pipelines_headers,
)
from dodo_cio.delivery.pipelines.render import Call, RenderError, render

__all__ = [
    "PIPELINES_HOSTS",
    "Call",
    "PipelinesClient",
    "RenderError",
    "pack",
    "pipelines_base_url",
    "pipelines_headers",
    "render",
]
