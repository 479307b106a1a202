"""`msgops load`: load profiles run by Locust (as a subprocess), measured exactly, judged by thresholds.

Modules, one idea each: `profile` (the YAML model, file:line errors), `plan` (what the locustfile
gets), `identities` (users, conversations and tokens derived from a seed, each process's share),
`provision` (creating them in the target; and their removal), `measure` (HDR histograms and
delivery counts, merged across Locust processes), `accounting` (lost, duplicated and out-of-order
deliveries and open sockets, from ranges of sequence numbers), `seqset` (those ranges),
`locust_process` (the subprocess) and `locust_main` (its entry point), `memory` (the service's RSS),
`summary` (metrics and the results document), `display` (the terminal report; the decision is
msgops.verdict's), `progress` (the live display), `run` (one run end to end). The locustfile and its
helpers live in loadtests/.
"""
