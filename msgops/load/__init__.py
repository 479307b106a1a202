"""`msgops load`: load profiles run by Locust (as a subprocess), measured exactly, judged by thresholds.

Modules, one idea each: `profile` (the YAML model, file:line errors), `plan` (what the locustfile
gets), `provision` (users, tokens, conversations; and their removal), `measure` (HDR histograms and
delivery records, merged across Locust processes), `accounting` (lost and duplicated deliveries,
open sockets), `locust_process` (the subprocess), `memory` (the service's RSS), `summary` (metrics
and the results document), `display` (the terminal report; the decision is msgops.verdict's), `progress` (the live
display), `run` (one run end to end). The locustfile and its helpers live in loadtests/.
"""
