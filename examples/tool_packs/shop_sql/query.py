"""Tool `shop_sql`: one read-only SQL query over the bundled shop database; answers columns and rows.

The database is built in memory from shop.sql (a file of this pack, written into the call's workspace)
on every call, so no call can change what the next one sees; the connection is also query-only, and
ATTACH (other database files) is refused.
"""

import json
import sqlite3
import sys
from pathlib import Path

DATABASE = Path("shop.sql")
DEFAULT_ROWS = 100


def refuse_attach(action: int, *_: object) -> int:
    return sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) else sqlite3.SQLITE_OK


def main() -> None:
    args = json.load(sys.stdin)
    limit = args.get("max_rows", DEFAULT_ROWS)
    connection = sqlite3.connect(":memory:")
    connection.executescript(DATABASE.read_text())
    connection.execute("PRAGMA query_only = ON")
    connection.set_authorizer(refuse_attach)
    try:
        cursor = connection.execute(args["query"])
        rows = cursor.fetchmany(limit + 1)
    except (sqlite3.Error, sqlite3.Warning) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    columns = [column[0] for column in cursor.description or ()]
    print(json.dumps({"columns": columns, "rows": rows[:limit], "truncated": len(rows) > limit}))


main()
