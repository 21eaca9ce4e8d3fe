"""The HTTP gateway: validates calls, enqueues them, waits for their results, answers."""
