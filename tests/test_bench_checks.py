"""The bench's zero-fault checks (issue 23, targets 2 and 4) can fail: each kind of fault is counted.

The bench reports "0 lost, 0 repeated, 0 completed twice" as PASS; these tests feed the
counting functions the evidence of each fault and check that it is counted and turns the row
into a MISS, so a PASS in the table means the check looked and found nothing.
"""

from __future__ import annotations

from typing import Any

from bench.claims import _double_claims_row, _Tally
from bench.mixed import _rows
from bench.mixed_load import Faults, Reader, Slice, count_faults


def _clean() -> dict[str, Any]:
    """Two readers on one channel that each got the peer's two messages; two sends stored; one task done once."""
    return {
        "readers": [Reader("c", "1", ["10", "11"]), Reader("c", "1", ["10", "11"])],
        "written": {"c": ["10", "11"]},
        "sent": [("20", "s0 #1"), ("21", "s1 #1")],
        "stored": [{"id": 10, "body": "peer 0"}, {"id": 11, "body": "peer 1"}, {"id": 20, "body": "s0 #1"}, {"id": 21, "body": "s1 #1"}],
        "completed": ["task_a"],
        "tasks": {"task_a": {"state": "completed", "attempts": 1}},
    }


def test_a_clean_level_has_no_faults() -> None:
    assert count_faults(**_clean()).total == 0


def test_a_message_a_reader_missed_is_lost() -> None:
    case = _clean()
    case["readers"][1] = Reader("c", "1", ["10"])
    assert count_faults(**case).lost == 1


def test_a_send_missing_from_the_store_is_lost() -> None:
    case = _clean()
    case["stored"] = case["stored"][:-1]
    assert count_faults(**case).lost == 1


def test_a_message_received_twice_or_stored_twice_is_repeated() -> None:
    case = _clean()
    case["readers"][0] = Reader("c", "1", ["10", "11", "11"])
    assert count_faults(**case).repeated == 1
    case = _clean()
    case["stored"].append({"id": 22, "body": "s1 #1"})  # the same send, stored again under a new id
    assert count_faults(**case).repeated == 1


def test_a_reader_given_its_own_message_is_unexpected() -> None:
    case = _clean()
    case["readers"][0] = Reader("c", "1", ["10", "11", "20"])
    assert count_faults(**case).unexpected == 1


def test_a_task_completed_twice_is_counted_from_the_answers_and_from_the_store() -> None:
    case = _clean()
    case["completed"] = ["task_a", "task_a"]
    assert count_faults(**case).twice == 1
    case = _clean()
    case["tasks"] = {"task_a": {"state": "completed", "attempts": 2}}
    assert count_faults(**case).twice == 1


def test_any_fault_turns_the_mixed_checks_row_into_a_miss() -> None:
    slices = [Slice(10, 1.0, 0.01, [0.001] * 10)]
    rows = {r.key: r for r in _rows(10, 8, slices, slices, Faults(lost=1), Faults())}
    assert rows["23.2 mixed x10 checks"].verdict == "MISS"
    rows = {r.key: r for r in _rows(10, 8, slices, slices, Faults(), Faults())}
    assert rows["23.2 mixed x10 checks"].verdict == "PASS"


def test_a_task_claimed_by_two_workers_turns_the_claims_checks_row_into_a_miss() -> None:
    tally = _Tally()
    tally.add([{"claimed": ["t1", "t2"], "errors": 0}, {"claimed": ["t2"], "errors": 0}], tasks=2, completed=2, again=0)
    assert tally.double_claims == 1
    assert _double_claims_row("23.4 claims SQLite checks", tally).verdict == "MISS"
    clean = _Tally()
    clean.add([{"claimed": ["t1"], "errors": 0}, {"claimed": ["t2"], "errors": 0}], tasks=2, completed=2, again=0)
    assert _double_claims_row("23.4 claims SQLite checks", clean).verdict == "PASS"
