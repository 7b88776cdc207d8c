"""Instruction classes: what the cycle model of `estimate` prices, counted from the emulators' blocks.

A block (qemu translation block, unicorn basic block) is a straight run of instructions; only its last
one can be a conditional branch. Each block is summarised once as a vector of class counts plus how it
ends, and each execution adds the vector; a block ending in a conditional branch counts it as taken when
the next block executed does not start right after it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

CLASSES = ("alu", "load", "store", "mul", "branch_taken", "branch_not_taken", "jump")


@dataclass(frozen=True)
class Block:
    counts: tuple[int, ...]  # per class of CLASSES, the last instruction included unless it is a branch
    n: int  # instructions in the block
    branch_end: int | None  # fall-through address when the block ends in a conditional branch


def summarise(kinds: list[str], fallthrough: int) -> Block:
    """`kinds`: each instruction's class in order ('branch' for a conditional branch)."""
    counts = [0] * len(CLASSES)
    branch_end = None
    for k, kind in enumerate(kinds):
        if kind == "branch":
            if k != len(kinds) - 1:  # a branch inside a block is never taken within it
                counts[CLASSES.index("branch_not_taken")] += 1
            else:
                branch_end = fallthrough
        else:
            counts[CLASSES.index(kind)] += 1
    return Block(tuple(counts), len(kinds), branch_end)


class Tally:
    """Executions of blocks for one call; `classes()` turns them into class counts."""

    def __init__(self) -> None:
        self.runs: Counter = Counter()
        self.taken: Counter = Counter()

    def classes(self, blocks: dict[int, Block]) -> dict[str, int]:
        out = dict.fromkeys(CLASSES, 0)
        for pc, times in self.runs.items():
            block = blocks[pc]
            for name, c in zip(CLASSES, block.counts):
                out[name] += c * times
            if block.branch_end is not None:
                taken = self.taken[pc]
                out["branch_taken"] += taken
                out["branch_not_taken"] += times - taken
        return out

    def instructions(self, blocks: dict[int, Block]) -> int:
        return sum(blocks[pc].n * times for pc, times in self.runs.items())
