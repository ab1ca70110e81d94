"""Principals (users, groups, service principals) and personal access tokens."""
