"""Math-Verify called directly, as a reward function would: `parse` both sides, `verify(gold, answer)`.

Run by the tests with Debian's /usr/bin/python3 -I -S and the pinned library directory on sys.path (argv[1]);
reads a JSON list of cases [{answer, reference, options}] on stdin, prints one verdict (true/false) each.
Written from the library's documented API, independently of the tool's program.
"""

import json
import sys

sys.path.insert(0, sys.argv[1])

from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify

CONFIGS = {"latex": LatexExtractionConfig, "expr": ExprExtractionConfig, "string": StringExtractionConfig}
VERIFY_OPTIONS = ("float_rounding", "numeric_precision", "strict", "allow_set_relation_comp")


def targets(specs):
    built = []
    for spec in specs:
        options = {key: value for key, value in spec.items() if key != "type"}
        if "strings" in options:
            options["strings"] = tuple(options["strings"])
        built.append(CONFIGS[spec["type"]](**options))
    return built


def judge(case):
    options = case["options"]
    gold_config = targets(options.get("reference_extraction", [{"type": "latex"}, {"type": "expr"}]))
    answer_config = targets(options.get("answer_extraction", [{"type": "latex"}, {"type": "expr"}]))
    gold = parse(case["reference"], gold_config)
    answer = parse(case["answer"], answer_config)
    return verify(gold, answer, **{key: options[key] for key in VERIFY_OPTIONS if key in options})


print(json.dumps([judge(case) for case in json.load(sys.stdin)]))
