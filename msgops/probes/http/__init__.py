"""The `http` probe family: the API observed from outside, as a client and as probe users.

basics (health, logging level, metrics, docs), endpoints, tls, auth (bad tokens, unprotected routes),
headers (CORS, security headers), status (status codes), inputs (length limits, XSS), injection,
privacy (emails), ratelimit, and flows (end-to-end journeys).
"""

from msgops.probes.http import (  # noqa: F401  (importing registers the probes)
    auth,
    basics,
    endpoints,
    flows,
    headers,
    injection,
    inputs,
    privacy,
    ratelimit,
    status,
    tls,
)
