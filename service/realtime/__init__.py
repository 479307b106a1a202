"""Realtime delivery over WebSockets: a hub per process, a bus between processes.

Modules, one idea each: `protocol` (the frames), `config` (tunables), `bus` (in-memory and
PostgreSQL LISTEN/NOTIFY fan-out between instances), `connection` (one socket's bounded outbox),
`delivery` (reading committed rows for the rooms that changed), `presence` and `typing_state`
(ephemeral state, never rows), `hub` (who is subscribed to what), `session` (one socket's
conversation with the server), `routes` and `lifecycle` (wiring into the app).
"""
