import copy
import pickle
from collections import namedtuple
from dataclasses import dataclass

Point = namedtuple("Point", "x y")


@dataclass(frozen=True)
class Item:
    name: str
    price: float


class Basket:
    def __init__(self):
        self.items = [Item("apple", 0.5), Item("pear", 0.75)]

    def total(self):
        return sum(i.price for i in self.items)


blob = pickle.dumps(Basket())
restored = pickle.loads(blob)
print(type(restored).__module__, type(restored).__qualname__, restored.total())
print(pickle.loads(pickle.dumps(Point(1, 2))))
print(copy.deepcopy(restored.items))
print(b"c__main__\nBasket" in pickle.dumps(Basket(), protocol=0))
