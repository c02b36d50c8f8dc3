"""Call statistics per plugin and function: counts, errors by kind, a latency histogram."""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

# Bucket upper bounds in seconds: 10 µs .. ~100 s, four per decade.
_BOUNDS: tuple[float, ...] = tuple(10 ** (e / 4) * 1e-5 for e in range(29))


@dataclass
class Histogram:
    """A fixed-bucket latency histogram (log-spaced, 4 buckets per decade)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(_BOUNDS) + 1))
    total: int = 0
    sum: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_BOUNDS, seconds)] += 1
        self.total += 1
        self.sum += seconds

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding the q-quantile; None with no observations."""
        if self.total == 0:
            return None
        rank = q * self.total
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return _BOUNDS[i] if i < len(_BOUNDS) else float("inf")
        return _BOUNDS[-1]  # pragma: no cover

    def buckets(self) -> list[tuple[float, int]]:
        return [(b, n) for b, n in zip((*_BOUNDS, float("inf")), self.counts, strict=True) if n]


@dataclass
class FunctionStats:
    """What happened to the calls of one function."""

    calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    inline_calls: int = 0
    latency: Histogram = field(default_factory=Histogram)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def timeouts(self) -> int:
        return self.errors.get("timeout", 0) + self.errors.get("out_of_fuel", 0)

    def snapshot(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "errors": dict(self.errors),
            "timeouts": self.timeouts,
            "inline_calls": self.inline_calls,
            "p50": self.latency.quantile(0.5),
            "p99": self.latency.quantile(0.99),
            "mean": self.latency.sum / self.latency.total if self.latency.total else None,
        }


class CallStats:
    """Statistics of one plugin, by function. Safe to update from several threads."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionStats] = {}
        self._lock = threading.Lock()

    def record(self, function: str, seconds: float, error: str | None, *, inline: bool) -> None:
        with self._lock:
            fs = self.functions.get(function)
            if fs is None:
                fs = self.functions[function] = FunctionStats()
            fs.calls += 1
            fs.latency.observe(seconds)
            if inline:
                fs.inline_calls += 1
            if error is not None:
                fs.errors[error] = fs.errors.get(error, 0) + 1

    def totals(self) -> dict[str, object]:
        with self._lock:
            merged = Histogram()
            calls = errors = timeouts = 0
            for fs in self.functions.values():
                calls += fs.calls
                errors += fs.error_count
                timeouts += fs.timeouts
                merged.total += fs.latency.total
                merged.sum += fs.latency.sum
                merged.counts = [
                    a + b for a, b in zip(merged.counts, fs.latency.counts, strict=True)
                ]
            return {
                "calls": calls,
                "errors": errors,
                "timeouts": timeouts,
                "p50": merged.quantile(0.5),
                "p99": merged.quantile(0.99),
            }

    def snapshot(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {name: fs.snapshot() for name, fs in self.functions.items()}
