"""Stage 5, configuration: the deployment's settings and secrets, and the services built from them.

  settings  `Settings` (the environment template.yaml sets), `SecretStore` (SSM), the delivery clients
  wiring    the state table and the identity resolver, built once per container

Above the stages it assembles; below the two flows (`ingest`, `retry`) that use it.
"""
