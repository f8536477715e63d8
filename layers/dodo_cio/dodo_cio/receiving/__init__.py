"""Stage 1, receiving: what arrived, whether Dodo signed it, and what to do when it cannot be read.

http_api    the request as API Gateway hands it over, and the answer (`HttpResponse`) Dodo gets
signature   Standard Webhooks verification (and signing, for the CLI and tests)
events      Dodo's event types by family
models      Dodo's envelope and payloads, validated
quarantine  the format of a signed webhook this version cannot process, kept for a person
"""
