"""Test and data generators: the load test, the sample webhook bodies and `make events`. Never deployed."""
