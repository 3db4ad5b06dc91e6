"""Progress of a long run (a batch, the cloud layers of an archive): a tqdm bar or the caller's callback."""

from __future__ import annotations

from collections.abc import Callable


def progress_reporter(progress: bool | Callable[[int, int], None], total: int, done: int, *, unit: str,
                      desc: str) -> Callable[[int | None], None]:
    """A callback taking the number of newly finished steps (None at the end).

    ``progress`` is True for a tqdm bar on stderr, False for none, or a callable given (done, total) after
    every step.
    """
    if callable(progress):
        state = {"done": done}
        progress(done, total)

        def call(step: int | None) -> None:
            if step:
                state["done"] += step
                progress(state["done"], total)
        return call
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit=unit, desc=desc, disable=not progress)

    def update(step: int | None) -> None:
        if step is None:
            bar.close()
        else:
            bar.update(step)
    return update
