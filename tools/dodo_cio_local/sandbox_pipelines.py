"""The sandbox's Data Pipelines endpoints: ``POST /v1/{identify,track,page,screen,group,alias,batch}``.

Why on the Track sandbox's server, under ``/v1``: a deployment talks to one API, and one server
means one set of scripted faults, ``fail_rate``, rate limit, recordings and ``/__sandbox/*``
controls for both -- a test scripts a 503 or a dropped connection the same way whichever API the
bridge is set to. ``TrackSandbox.pipelines_url`` (``http://host:port/v1``) is what
``CUSTOMERIO_PIPELINES_URL`` takes, like ``base_url`` for ``CUSTOMERIO_TRACK_URL``.

What it answers, after the scripted faults, ``fail_rate`` and rate limit every request meets:

* HTTP Basic auth with the configured Pipelines key as the user and an empty password: 401
  otherwise;
* an unknown call: 404; a method other than POST: 405; a body that is not JSON: 400 (the spec's
  "Invalid or malformed request", strict mode or not);
* then the body is checked (``PipelinesValidator.request_errors``: the limits, then the spec and
  the sandbox's own checks). In strict mode (``X-Strict-Mode: 1``) a request with any error is
  answered 400 ``{"meta": {"errors": [...]}}`` (the spec's 400 body) and none of it is kept.
  Without strict mode Pipelines answers 200 whatever it drops, and so does the sandbox: the
  request is recorded with its ``call_errors``, and ``accepted_calls()`` leaves out the calls
  they name (all of them when the error is the request's own, such as a batch over 500 KB).
"""

from __future__ import annotations

from typing import Any, Final

from dodo_cio_local.http_base import basic_auth_is
from dodo_cio_local.pipelines_v1 import BATCH, call_kind, strict
from dodo_cio_local.pipelines_validator import PipelinesValidator
from dodo_cio_local.sandbox_records import ReceivedRequest

UNAUTHORIZED: Final = {"meta": {"errors": ["Unauthorized request: the API key is the user, the password empty"]}}


class PipelinesEndpoints:
    """What the sandbox answers a ``/v1/...`` request once no fault was played.

    ``validate=False`` (load tests) keeps auth, JSON, the limits and the batch's shape, and skips
    the spec, as on the Track side.
    """

    def __init__(self, api_key: str, validator: PipelinesValidator, *, validate: bool = True) -> None:
        self.api_key = api_key
        self.validator = validator
        self.validate = validate
        self.routes = frozenset({*validator.call_types, BATCH})

    def process(self, rec: ReceivedRequest) -> tuple[int, Any]:
        """(status, JSON answer) for ``rec``, recording in ``rec.call_errors`` what was refused or dropped."""
        if not basic_auth_is(rec.headers, self.api_key, ""):
            return 401, UNAUTHORIZED
        kind = call_kind(rec.path)
        if kind not in self.routes:
            return 404, {"meta": {"errors": [f"no such endpoint: {rec.path}"]}}
        if rec.method != "POST":
            return 405, {"meta": {"errors": [f"{rec.path} takes POST"]}}
        if rec.json is None:
            return 400, {"meta": {"errors": ["the body must be JSON"]}}
        errors = self.validator.request_errors(kind, rec.json, size=len(rec.body), content=self.validate)
        rec.call_errors = errors
        if errors and strict(rec.headers):
            return 400, {"meta": {"errors": [str(e) for e in errors]}}
        return 200, {}
