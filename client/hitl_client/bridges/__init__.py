"""Framework bridges: each module is an optional extra of hitl-client."""
