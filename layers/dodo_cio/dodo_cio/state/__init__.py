"""Stage 3, state: what the bridge remembers between webhooks, in one DynamoDB table.

table        `StateTable`: per-piece stamps, the identity directory, receipts, the summary's record
idempotency  the duplicate check: one answer per webhook id, the state writes in its transaction
identity     who a webhook is about: the directory, and Dodo's API for a customer not seen yet
dodo_api     the request path's Dodo API client (customers, payments)
summary      the commercial summary (ledger): each payment and refund counted once
"""
