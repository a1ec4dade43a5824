"""Small helpers for the sentences the CLI, the app and the files say to people."""
from __future__ import annotations


def plural(count: int, one: str, many: str) -> str:
    """"1 nucleus", "2 nuclei": the count with the noun that goes with it."""
    return f"{count} {one if count == 1 else many}"
