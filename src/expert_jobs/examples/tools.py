"""The Python tools of the bundled example: read a bundled data file, add numbers, a percentage.

Plain functions: the configuration file names this module in a ``pythonSkill`` and the runtime
describes each function to the model from its type hints and docstring.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["add", "percent_change", "read_data"]


def _tidy(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def read_data(name: str) -> str:
    """Read one of the example's bundled data files.

    Args:
        name: the file name, e.g. sales.csv
    """
    folder = resources.files(__package__ or "expert_jobs.examples").joinpath("data")
    available = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    if name not in available:
        raise ValueError(f"no data file {name!r}; available: {', '.join(available)}")
    return folder.joinpath(name).read_text(encoding="utf-8")


def add(numbers: list[float]) -> int | float:
    """Add numbers.

    Args:
        numbers: the numbers to add
    """
    return _tidy(sum(numbers))


def percent_change(old: float, new: float) -> float:
    """The change from ``old`` to ``new`` in percent, rounded to one decimal.

    Args:
        old: the earlier value (not zero)
        new: the later value
    """
    if old == 0:
        raise ValueError("old must not be zero")
    return round((new - old) / old * 100, 1)
