def parse(record):
    key, value = record.split("=")
    return key, int(value)


def load(records):
    return dict(parse(r) for r in records)


print(load(["a=1", "b=2"]))
config = load(["a=1", "b=two"])
print(config)
