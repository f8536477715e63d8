"""The ground floor: what every stage stands on and that knows nothing of webhooks or Customer.io.

  aws           one boto3 session and client per service, with short per-attempt timeouts
  deadline      the invocation's deadline, and a guard that stops AWS attempts that could not finish
  env           numbers from the environment, and `ConfigError`
  http          the kept-alive HTTP client both outbound APIs (Customer.io, Dodo) use
  logmask       the log formatter that masks emails and secrets
  secret_names  which attribute names hold secrets (never sent, never logged)
  sqs           the `send_message` shape and the JSON body both queue formats share
  telemetry     structured log lines and EMF metrics
  times, ulid   time conversions; deterministic, sortable event ids

Imports nothing from the other stages (tests/infra/test_import_graph.py).
"""
