"""crm_store.consumer_queries.search_consumers: what a query is taken for."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from crm_store.access import SYSTEM_SCOPE
from crm_store.consumer_queries import search_consumers
from crm_store.db import Database
from crm_store.models import Account, Consumer


def _consumer(db: Database, name: str, number: str) -> int:
    with db.transaction() as s:
        consumer = Consumer(full_name=name)
        s.add(consumer)
        s.flush()
        s.add(
            Account(
                consumer=consumer,
                number_raw=number,
                number=number,
                region="Москва",
                timezone="Europe/Moscow",
                service_address="Москва, ул. Ленина, 1",
            )
        )
        return consumer.id


def test_text_without_digits_is_a_name_searched_in_one_statement(db: Database) -> None:
    """A surname fits the account number pattern (letters and digits, 4-32) but is never
    taken for one: the search is by name, in one statement."""
    named = _consumer(db, "Петров Пётр", "0000123456")
    lettered = _consumer(db, "Сидоров Иван", "ПЕТРОВ")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        statements.append(sql)

    event.listen(db.engine, "before_cursor_execute", seen)
    with db.transaction() as s:
        page = search_consumers(s, SYSTEM_SCOPE, "петров")
        assert [card.consumer.id for card in page.items] == [named]
        assert len(statements) == 1
        by_number = search_consumers(s, SYSTEM_SCOPE, "0000123456")
        assert [card.consumer.id for card in by_number.items] == [named]
    assert lettered != named
