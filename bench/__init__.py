"""Benchmarks of hitl on real Kafka and a real MongoDB-compatible store (`python -m bench.run`)."""
