def check(x):
    assert x > 0, f"x must be positive, got {x}"
    return x


print(check(3))
try:
    check(-1)
except AssertionError as error:
    error.add_note("while checking the input")
    raise
