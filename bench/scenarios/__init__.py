"""One module per measured path; each runs against a fresh stack and returns a dict."""
