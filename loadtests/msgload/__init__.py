"""Helpers of the messaging locustfile (loadtests/messaging.py): run state, requests, WebSocket
listeners, the open-model loop and the wiring into Locust's events. Imported only inside Locust."""
