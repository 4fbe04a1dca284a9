"""What a job or a step cost in money: an amount and its currency (see docs/providers.md, "Cost in
money"). The prices themselves come from a maintained price table read by
:mod:`expert_jobs.engine.pricing`; this module only holds the value, with no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["Cost", "format_cost"]


@dataclass(frozen=True, slots=True)
class Cost:
    """An amount of money, exact (a ``Decimal``), in one ``currency`` (ISO 4217; the price table's
    prices are in ``"USD"``). Two costs add up when their currencies agree."""

    amount: Decimal
    currency: str = "USD"

    def __add__(self, other: object) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        if other.currency != self.currency:
            raise ValueError(f"cannot add a cost in {other.currency} to one in {self.currency}")
        return Cost(self.amount + other.amount, self.currency)

    def to_wire(self) -> dict[str, Any]:
        """``{"amount": "0.00492", "currency": "USD"}``: the amount as a decimal string (exact)."""
        return {"amount": str(self.amount), "currency": self.currency}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Cost:
        """Rebuild a cost from :meth:`to_wire`'s output."""
        return cls(Decimal(str(data["amount"])), str(data["currency"]))


def format_cost(cost: Cost | None) -> str:
    """How people read a cost: ``"$0.0049"`` (US dollars, four decimals, at least one significant
    digit for a tiny amount), ``"0.0049 EUR"`` for another currency, ``"unknown"`` for ``None`` (a
    model the price table does not know: never shown as 0)."""
    if cost is None:
        return "unknown"
    amount = cost.amount
    places = 4
    while 0 < abs(amount) < Decimal(1).scaleb(-places) and places < 12:
        places += 1
    text = f"{amount:.{places}f}"
    return f"${text}" if cost.currency == "USD" else f"{text} {cost.currency}"
