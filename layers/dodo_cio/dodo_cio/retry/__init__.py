"""The retry path: parked deliveries from SQS go back to Customer.io in as few requests as possible.

One module per concern; import from the module that holds a name (nothing is re-exported here):

  pacing     `RateLimiter`: this container's share of Customer.io's request rate
  planning   `plan_requests`, `send_with_split`: ops packed into `/api/v2/batch` requests within
             the byte and count limits, a 413 split in halves; `OpFate`, one op's result
  verdicts   `Verdicts`: per message delivered / retry / repark / dead_letter / deferred, recorded
             on SQS, and the rewritten parked message; `batch_response` for Lambda
  service    `RetryProcessor` (one batch, under the invocation's deadline) and `RetryService`
             (built once per container: queues, credentials, pacing, metrics and logs)

The handler (functions/retry/app.py) answers Lambda with `verdicts.batch_response`.
"""
