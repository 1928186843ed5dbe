"""What the reference workload can be told to get wrong: sync delays, failed read-model writes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from exporter.config.base import format_duration, parse_duration


def _seconds(text: str) -> float:
    text = text.strip()
    if text in ("0", "0s", "0ms"):
        return 0.0
    return parse_duration(text)


class DelayKind(StrEnum):
    FIXED = "fixed"
    UNIFORM = "uniform"
    EXPONENTIAL = "exp"
    NORMAL = "normal"


@dataclass(frozen=True)
class Delay:
    """How long an asynchronous sync waits before it writes the read models.

    Written as `2s` (fixed), `uniform:1s..3s`, `exp:2s` (exponential with that mean) or
    `normal:2s,500ms` (mean and standard deviation, never below zero).
    """

    kind: DelayKind = DelayKind.FIXED
    a: float = 0.0
    b: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Delay:
        kind, _, rest = text.partition(":")
        if not rest:
            return cls(DelayKind.FIXED, _seconds(text))
        try:
            chosen = DelayKind(kind.strip())
        except ValueError:
            raise ValueError(
                f"unknown delay distribution {kind!r}: use 2s, uniform:1s..3s, exp:2s or "
                "normal:2s,500ms"
            ) from None
        if chosen is DelayKind.UNIFORM:
            low, sep, high = rest.partition("..")
            if not sep:
                raise ValueError(f"uniform delay {text!r} needs a range such as uniform:1s..3s")
            a, b = _seconds(low), _seconds(high)
            if b < a:
                raise ValueError(f"uniform delay {text!r}: the upper end is below the lower")
            return cls(chosen, a, b)
        if chosen is DelayKind.NORMAL:
            mean, sep, sd = rest.partition(",")
            if not sep:
                raise ValueError(f"normal delay {text!r} needs a mean and a deviation")
            return cls(chosen, _seconds(mean), _seconds(sd))
        if chosen is DelayKind.EXPONENTIAL:
            return cls(chosen, _seconds(rest))
        return cls(DelayKind.FIXED, _seconds(rest))

    @classmethod
    def fixed(cls, seconds: float) -> Delay:
        return cls(DelayKind.FIXED, seconds)

    def sample(self, rng: random.Random) -> float:
        if self.kind is DelayKind.UNIFORM:
            return rng.uniform(self.a, self.b)
        if self.kind is DelayKind.EXPONENTIAL:
            return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        if self.kind is DelayKind.NORMAL:
            return max(0.0, rng.gauss(self.a, self.b))
        return self.a

    @property
    def mean(self) -> float:
        if self.kind is DelayKind.UNIFORM:
            return (self.a + self.b) / 2
        return self.a

    def __str__(self) -> str:
        if self.kind is DelayKind.FIXED:
            return format_duration(self.a) if self.a else "0s"
        if self.kind is DelayKind.UNIFORM:
            return f"uniform:{format_duration(self.a)}..{format_duration(self.b)}"
        if self.kind is DelayKind.NORMAL:
            return f"normal:{format_duration(self.a)},{format_duration(self.b)}"
        return f"exp:{format_duration(self.a)}"


class FailureKind(StrEnum):
    DROP = "drop"
    """The read-model write is never made: the row is missing (or stale, for an update)."""
    WRONG = "wrong"
    """The write is made with a wrong field (the total is off by 0.01)."""
    MIXED = "mixed"
    """Half of the failures are drops, half wrong writes."""


class Fate(StrEnum):
    OK = "ok"
    DROPPED = "dropped"
    WRONG = "wrong"


def decide(rng: random.Random, rate: float, kind: FailureKind) -> Fate:
    """The fate of one read-model write under an injected failure rate."""
    if rate <= 0 or rng.random() >= rate:
        return Fate.OK
    if kind is FailureKind.DROP:
        return Fate.DROPPED
    if kind is FailureKind.WRONG:
        return Fate.WRONG
    return Fate.DROPPED if rng.random() < 0.5 else Fate.WRONG
