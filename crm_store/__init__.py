"""The shared CRM store: ORM models, sessions, repositories, migrations, import."""

from crm_store.db import Database, make_engine

__all__ = ["Database", "make_engine"]
