"""Reviewer channels that arrive from outside: Slack buttons and signed email links."""
