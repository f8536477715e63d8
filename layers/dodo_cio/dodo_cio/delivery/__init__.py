"""Stage 4, delivery: sending ops to Customer.io, and keeping what could not be sent.

track        the Track v2 client and its answer classification
pipelines    the Data Pipelines client and the rendering of ops as its calls
destination  what ingest and retry use, whichever API is configured
budget       this container's share of the Customer.io request rate
backoff      the retry schedule
parking      the parked-delivery message format on the retry queue
"""
