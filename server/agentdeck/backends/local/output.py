"""Run output as numbered events, with the per-run cap written once for every store. Stdlib only."""

from __future__ import annotations

__all__ = ["cap_output"]


def cap_output(events: list[tuple[str, str]], last_seq: int, used: int, max_bytes: int) -> tuple[list[tuple[int, str, str]], int]:
    """Number output lines after `last_seq`; past `max_bytes` of agent output, one note then nothing.

    Lines of kind "system" are agentdeck's own (how the run ended) and always kept. `used`
    counts agent output only; once the cap is met it stands above `max_bytes`, so the note is
    written once however many batches follow. Returns the (seq, kind, text) rows to store and
    the bytes they add to the run's count.
    """
    rows: list[tuple[int, str, str]] = []
    seq, added = last_seq, 0
    for kind, text in events:
        if kind != "system":
            if used + added > max_bytes:
                continue  # capped already; the note was written
            if used + added + len(text) > max_bytes:
                text, kind = f"output capped at {max_bytes} bytes; later lines were dropped", "system"
                added = max_bytes + 1 - used
            else:
                added += max(len(text), 1)
        seq += 1
        rows.append((seq, kind, text))
    return rows, added
