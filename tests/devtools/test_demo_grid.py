"""Demo accounts carry a grid link: a few substations per city, one feeder per street."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import select

from crm_store.addresses import parse_address
from crm_store.db import Database
from crm_store.models import Account
from devtools.demo import seed_demo
from devtools.demo.generator import SUBSTATION_SIDES, grid_link


def test_demo_accounts_have_feeders_and_substations(db: Database) -> None:
    seed_demo(db, consumers=60, seed=3, as_of=date(2026, 11, 29))
    substations: dict[str, set[str]] = defaultdict(set)
    feeders: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    with db.transaction() as s:
        accounts = s.scalars(select(Account)).all()
        for account in accounts:
            assert account.feeder is not None, account.number
            assert account.substation is not None, account.number
            place = parse_address(account.service_address)
            substations[place.settlement].add(account.substation)
            feeders[(place.settlement, place.street_type, place.street)].add(account.feeder)
            city = account.substation.removeprefix("ПС ").rsplit("-", 1)[0]
            assert account.feeder.startswith(city + "-"), account.feeder
        fixed = s.scalars(select(Account).where(Account.number == "7700000001")).one()
        assert (fixed.feeder, fixed.substation) == grid_link("Москва", "ул. Ленина")
    assert len(accounts) > 60
    assert all(len(names) <= len(SUBSTATION_SIDES) for names in substations.values())
    assert all(len(names) == 1 for names in feeders.values())  # one feeder per street
    assert any(len(names) > 1 for names in substations.values())
