"""Deleting many rows without one statement over millions of them."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction


def rows_delete_in_batches(table: str, where: str, params: Sequence, *, order: str, batch: int) -> int:
    """Delete the rows of ``table`` matching ``where`` (SQL with %s placeholders), ``batch`` at a time in the
    order of ``order`` (a column an index serves with ``where``), each batch its own short transaction: no long
    lock, no burst of WAL. ``table``, ``where`` and ``order`` are the caller's own SQL, never input. Returns how
    many went."""
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN "  # noqa: S608 - the caller's own SQL, see the docstring
                f"(SELECT id FROM {table} WHERE {where} ORDER BY {order} LIMIT %s)",
                [*params, batch],
            )
            count = max(cursor.rowcount, 0)
        deleted += count
        if count < batch:
            return deleted
