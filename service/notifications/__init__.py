"""Notifications beyond the database: realtime `notification` events and web push."""
