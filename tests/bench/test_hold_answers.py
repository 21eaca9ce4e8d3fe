"""How the hold scores a batch answer: each wrong call inside it counted, and shown as the example."""

from __future__ import annotations

from collections import Counter

import orjson

from service.bench import workloads
from service.bench.hold import note_wrong_calls


def test_a_batch_with_wrong_calls_counts_each_and_shows_the_first() -> None:
    results = [{"id": str(i), "status": "ok", "stdout": f"{i * i}\n"} for i in range(5)]
    results[1] = {"id": "1", "status": "timeout", "stdout": "", "cpu_ms": 2.5}
    results[3] = {"id": "3", "status": "ok", "stdout": "wrong\n"}
    answer = orjson.dumps({"results": results}).decode()
    assert workloads.batch_problem(orjson.loads(answer), 5) == "status timeout"

    wrong: Counter[str] = Counter()
    example = note_wrong_calls(answer, wrong)

    assert wrong == Counter({"status timeout": 1, "wrong stdout": 1})
    assert orjson.loads(example) == results[1]


def test_an_answer_that_is_not_a_batch_is_kept_as_it_is() -> None:
    wrong: Counter[str] = Counter()
    assert note_wrong_calls("not json", wrong) == "not json"
    assert note_wrong_calls('{"detail": "x"}', wrong) == '{"detail": "x"}'
    assert not wrong
