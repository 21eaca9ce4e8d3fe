class ConfigError(Exception):
    pass


def read(key, table):
    try:
        return table[key]
    except KeyError as missing:
        raise ConfigError(f"no setting {key!r}") from missing


def first(table):
    try:
        return read("first", table)
    except ConfigError:
        return table["fallback"]


print(first({"first": 1}))
print(first({}))
