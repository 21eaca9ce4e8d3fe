from dataclasses import dataclass, field, fields
from typing import get_type_hints


def scale(value: float, factor: int = 2) -> float:
    return value * factor


@dataclass(order=True)
class Task:
    priority: int
    name: str = field(compare=False)
    tags: list = field(default_factory=list, compare=False)


print(scale.__annotations__)
print(get_type_hints(scale))
print([(f.name, f.type) for f in fields(Task)])
print(sorted([Task(3, "c"), Task(1, "a"), Task(2, "b")]))
x: int = 5
print(__annotations__)
