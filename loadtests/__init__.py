"""Locust load tests of Sandpit: `locustfile.py` (the users), `run.py` (`make loadtest`, `make soak`)."""
