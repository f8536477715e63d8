"""Dodo Payments -> Customer.io bridge: the domain shared by both Lambda functions.

One subpackage per stage a webhook passes through, each importing only from the stages before it
(tests/infra/test_import_graph.py):

  platform       0  AWS clients, deadlines, telemetry, HTTP, environment: no webhook knowledge
  receiving      1  the HTTP boundary, signatures, Dodo's models, quarantine
  mapping        2  what Customer.io should know: ops, attributes, money, limits
  state          3  the state table, the duplicate check, identity, Dodo lookups, the summary
  delivery       4  Track and Pipelines clients, the budget, backoff, parking
  configuration  5  settings and secrets, and the services built from them
  ingest, retry  6  the two flows: a webhook from Dodo; a parked delivery from SQS
"""

__version__ = "0.1.0"
