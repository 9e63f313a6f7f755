"""The JSON API under /v1: approvals, decisions, waiting, keys, health."""
