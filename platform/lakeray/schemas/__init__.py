"""Pydantic request bodies, one per concept, shared by the REST routes and the client."""
