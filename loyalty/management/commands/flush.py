"""`manage.py flush`, with SQLite emptying tables the way PostgreSQL does.

On PostgreSQL Django's flush is a TRUNCATE, which does not fire row triggers: the append-only
audit trail's triggers (loyalty migration 0011) refuse DELETE row by row, and TRUNCATE empties
the table anyway, as the table's owner may. SQLite has no TRUNCATE; its flush is a DELETE per
table, which those triggers refuse. So on SQLite this flush takes the triggers of the tables it
empties off, empties them and puts the same triggers back (their own SQL from sqlite_master),
in one transaction: no other connection ever sees a table without its triggers, and a flush
that fails leaves them in place. This is what emptying the whole database means on either
database, whoever runs it (the test suite's transactional tests do, between tests); it opens
no way to delete some audit rows and keep the rest.
"""

from django.core.management.commands import flush
from django.db import connections, transaction


class Command(flush.Command):
    def handle(self, **options) -> None:
        database = options["database"]
        connection = connections[database]
        if connection.vendor != "sqlite":
            return super().handle(**options)
        tables = connection.introspection.django_table_names(
            only_existing=True, include_views=False
        )
        with transaction.atomic(using=database):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                    f"AND tbl_name IN ({', '.join(['%s'] * len(tables))}) ORDER BY name",
                    tables,
                )
                triggers = cursor.fetchall()
                for name, _ in triggers:
                    cursor.execute(f"DROP TRIGGER {connection.ops.quote_name(name)}")
            super().handle(**options)
            with connection.cursor() as cursor:
                for _, sql in triggers:
                    cursor.execute(sql)
