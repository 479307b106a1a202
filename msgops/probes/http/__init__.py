"""The `http` probe family: the API observed from outside, as a client and as probe users.

basics (health, logging level, metrics, docs), endpoints, tls, auth (bad tokens, unprotected routes),
headers (CORS, security headers), status (status codes), inputs (length limits, XSS), injection,
privacy (emails), ratelimit, flows (end-to-end journeys), attachments and notifications (features a
target advertises in /health capabilities).
"""

from msgops.probes.http import (  # noqa: F401  (importing registers the probes)
    attachments,
    auth,
    basics,
    endpoints,
    flows,
    headers,
    injection,
    inputs,
    notifications,
    privacy,
    ratelimit,
    status,
    tls,
)
