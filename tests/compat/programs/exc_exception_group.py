def validate(items):
    errors = [ValueError(f"bad {i}") for i in items if i < 0]
    if errors:
        raise ExceptionGroup("validation failed", errors)


try:
    validate([1, -2, -3])
except* ValueError as group:
    print("caught", len(group.exceptions))
validate([-1, 2, -5])
