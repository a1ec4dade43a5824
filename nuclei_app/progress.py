"""A run's progress on the terminal: a bar with count, rate and ETA (tqdm), or plain lines
where the output is a log file or a pipe."""
from __future__ import annotations

from typing import TextIO


class Progress:
    """A progress bar with count, rate and ETA (tqdm) on a terminal; plain lines otherwise.
    Per-image lines are printed either way, above the bar."""

    def __init__(self, total: int, log: TextIO):
        self.total, self.log = total, log
        self.bar = None
        if total and _is_terminal(log):
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="image", file=log, dynamic_ncols=True, leave=False)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def done(self, line: str) -> None:
        """An image's line, counted on the bar."""
        self.note(line)
        if self.bar is not None:
            self.bar.update(1)

    def note(self, line: str) -> None:
        """A line above the bar (no bar: a plain line), without counting an image."""
        if self.bar is None:
            print(line, file=self.log, flush=True)
        else:
            self.bar.write(line, file=self.log)

    def tiles(self, name: str, blocks: bool = False):
        """Tile (or block) progress of a large image: the bar's postfix on a terminal; plain
        lines otherwise, at each tenth of an image of 20 tiles or more (a whole slide takes
        long: the log shows it is moving). ``blocks``: a block-wise image, each of whose
        blocks takes seconds, gets a line per block where it has fewer than 20 (a user test
        waited two minutes on 9 blocks after a line saying their progress would follow)."""
        shown = {"tiles": 0, "step": 0}
        unit = "blocks" if blocks else "tiles"

        def report(done: int, tiles: int) -> None:
            if self.bar is not None and tiles > 1:
                self.bar.set_postfix_str(f"{name}: {unit[:-1]} {done}/{tiles}")
                return
            steps = 10 if tiles >= 20 else tiles if blocks else 0   # lines per image
            if self.bar is None and steps:
                if tiles != shown["tiles"] or done * steps // tiles < shown["step"]:  # a new plan: count again
                    if shown["step"]:  # said, or a trial's log counted the blocks twice with no word why
                        print(f"  {name}: its {unit} again, at another diameter (the image's line gives the one "
                              "used)", file=self.log, flush=True)
                    shown.update(tiles=tiles, step=0)
                if done * steps // tiles > shown["step"]:
                    shown["step"] = done * steps // tiles
                    print(f"  {name}: {done} of {tiles} {unit}", file=self.log, flush=True)
        return report


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
