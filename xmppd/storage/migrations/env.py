"""Alembic environment for xmppd.

:meth:`xmppd.storage.Database.migrate` passes its open connection in
``config.attributes["connection"]``; without one (the ``alembic`` command line)
the URL comes from the ``sqlalchemy.url`` option.
"""

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from xmppd.storage import normalise_url
from xmppd.storage.tables import metadata

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: autogenerate "batch" (copy-and-move) ops.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (conn := config.attributes.get("connection")) is not None:
    run(conn)
else:
    engine = create_engine(
        normalise_url(config.get_main_option("sqlalchemy.url")), poolclass=pool.NullPool
    )
    with engine.begin() as conn:
        run(conn)
