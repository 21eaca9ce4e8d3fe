import json
import re

log = "2024-01-05 ERROR disk full; 2024-01-06 WARN cpu hot; 2024-01-07 ERROR net down"
errors = re.findall(r"(\d{4}-\d{2}-\d{2}) ERROR ([a-z ]+)", log)
print(errors)
print(re.sub(r"(\w+)@(\w+)\.com", r"\2 at \1", "mail bob@example.com or amy@test.com"))
print(re.split(r"[;,]\s*", "a, b;c,  d"), bool(re.fullmatch(r"[A-Z][a-z]+", "Hello")))
record = {"name": "Zoë", "values": [1, 2.5, None, True], "nested": {"k": "v"}}
text = json.dumps(record, sort_keys=True)
print(text)
print(json.dumps(record, indent=2, ensure_ascii=False))
print(json.loads(text) == record)
try:
    json.loads("{bad json}")
except json.JSONDecodeError as exc:
    print("decode error:", exc)
