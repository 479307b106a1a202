"""The msgops reference messaging service: FastAPI + PostgreSQL Row Level Security + WebSockets."""
