"""realtime probes: the WebSocket endpoint at <api>/realtime, exercised by probe users.

Protocol (service/realtime/protocol.py, docs/realtime.md): connect, send `{"type": "auth", "token": ...}`,
get `authenticated`, join conversations, receive their events. Modules: `client` (a recording
WebSocket client and the REST set-up of each scene), `auth` (realtime.auth_required), `delivery`
(delivery, no_leak, resume, multi_tab), `ephemeral` (typing_ttl, presence), `events` (realtime.event).
"""

from msgops.probes.realtime import auth, delivery, ephemeral, events

__all__ = ["auth", "delivery", "ephemeral", "events"]
