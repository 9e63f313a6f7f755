"""An invoices agent for hitl, written only against the public `hitl_sdk` API."""
