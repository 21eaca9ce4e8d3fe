import warnings


def old_api():
    warnings.warn("old_api is deprecated, use new_api", DeprecationWarning, stacklevel=2)
    return 1


warnings.warn("plain user warning")
old_api()
for _ in range(3):
    warnings.warn("shown once per location", RuntimeWarning)
warnings.simplefilter("error", UserWarning)
try:
    warnings.warn("now an error")
except UserWarning as exc:
    print("caught:", exc)
print("end")
