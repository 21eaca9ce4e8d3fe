"""The worker process: pulls jobs from the queue and runs each one in a sandbox."""
