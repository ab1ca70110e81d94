"""Durable storage: the SQL metadata DB (SQLAlchemy) and its versioned migrations."""
