"""Lending a worker's idle sandbox slots to running jobs that can use more than one (judging).

Only the claim loop takes slots from the free list, and it sizes each claim by that list, so slots are
lent at one point of the loop only: right after a claimed batch has been started, before the next
claim is sized. A borrower receives slots on its own queue as they are lent and gives them all back
to the free list when it is done; giving back is safe at any time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Loan:
    wanted: int
    slots: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    lent: list[int] = field(default_factory=list)

    def receive(self, slot: int) -> None:
        self.lent.append(slot)
        self.wanted -= 1
        self.slots.put_nowait(slot)


class SlotLender:
    def __init__(self, free_slots: list[int]) -> None:
        self.free_slots = free_slots
        self.loans: list[Loan] = []

    def borrow(self, wanted: int) -> Loan:
        loan = Loan(wanted)
        if wanted > 0:
            self.loans.append(loan)
        return loan

    def lend_idle(self) -> None:
        """Called by the claim loop only, between starting a batch and sizing the next claim."""
        for loan in self.loans:
            while loan.wanted > 0 and self.free_slots:
                loan.receive(self.free_slots.pop())

    def give_back(self, loan: Loan) -> None:
        if loan in self.loans:
            self.loans.remove(loan)
        self.free_slots.extend(loan.lent)
        loan.lent.clear()
