"""Smartcar Vehicles API v3, Management API subscriptions and application tokens (§14)."""
