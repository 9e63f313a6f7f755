"""Slack: the interactivity endpoint behind the Approve / Reject buttons."""
