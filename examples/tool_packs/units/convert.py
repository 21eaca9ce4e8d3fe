"""Tool `convert_units`: convert a value between units of one dimension (length, mass, time, volume,
area, speed, temperature, energy), from the table in units.json (a file of this pack)."""

import json
import sys
from pathlib import Path

TABLE = json.loads(Path("units.json").read_text())["units"]


def main() -> None:
    args = json.load(sys.stdin)
    source, target = TABLE.get(args["from"]), TABLE.get(args["to"])
    unknown = [name for name, unit in ((args["from"], source), (args["to"], target)) if unit is None]
    if unknown:
        print(json.dumps({"error": f"unknown unit {unknown[0]!r}; known: {', '.join(TABLE)}"}))
        sys.exit(1)
    if source["dimension"] != target["dimension"]:
        print(json.dumps({"error": f"cannot convert {source['dimension']} to {target['dimension']}"}))
        sys.exit(1)
    base = args["value"] * source["scale"] + source["offset"]
    value = (base - target["offset"]) / target["scale"]
    print(
        json.dumps(
            {"value": round(value, args.get("digits", 10)), "unit": args["to"], "dimension": target["dimension"]}
        )
    )


main()
