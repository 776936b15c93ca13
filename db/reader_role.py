"""The PostgreSQL role the SQL console runs as, and the check that it is one.

A ``READ ONLY`` transaction is not a sandbox: a superuser's query may still run
programs on the server (``COPY ... TO PROGRAM``), read and write its files, end other
sessions and undo the session's settings, and ``SET ROLE`` from a superuser session
can be undone by the query itself (``set_config('role', ...)``). So the console
checks the *session* user of its connection (:func:`console_refusal`) and refuses
one that is a superuser, holds ``CREATEROLE``, ``BYPASSRLS`` or ``REPLICATION``, is a
member of a built-in role that reaches past the tables (:data:`PRIVILEGED_ROLES`), or
may call ``dblink`` or use a foreign server (both open other connections, which are
not read-only).

:func:`grant_reader` makes the role to use instead (``naslab db grant-reader``): it
may log in and SELECT naslab's own tables and views (``naslab_*``) and nothing else.
Optuna's tables (``studies``, ``trials``, ...) are left out on purpose: they hold a
searcher's internal state, which the ``naslab_*`` views already present, and their
generic names may belong to another application sharing the database. No default
privileges are set, because they cannot be limited to ``naslab_*`` names (they would
hand the reader every table its owner creates later, Optuna's too); run
``grant-reader`` again after a schema upgrade adds a table (it is idempotent).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from naslab.core.errors import ConfigError
from naslab.db.engine import Database, parse_url, storage_url

__all__ = [
    "DEFAULT_ROLE",
    "PRIVILEGED_ROLES",
    "SQL_URL_ENV",
    "ReaderGrant",
    "console_refusal",
    "grant_reader",
    "require_postgres",
    "role_risks",
]

#: The role ``naslab db grant-reader`` creates unless told another name.
DEFAULT_ROLE = "naslab_reader"
#: The environment variable ``naslab sql`` and ``naslab schema`` connect with first.
SQL_URL_ENV = "NASLAB_SQL_URL"
#: Built-in roles whose members reach past the tables: run programs, read or write
#: server files, signal other sessions, read or write every table.
PRIVILEGED_ROLES = ("pg_execute_server_program", "pg_read_server_files",
                    "pg_write_server_files", "pg_signal_backend", "pg_read_all_data",
                    "pg_write_all_data")
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_ROLES_ARRAY = "ARRAY[" + ", ".join(f"'{r}'" for r in PRIVILEGED_ROLES) + "]::text[]"
# what a role may do beyond reading tables; {who} is an expression giving its oid
_RISKS_SQL = f"""
SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolbypassrls, r.rolreplication,
  ARRAY(SELECT b.rolname::text FROM pg_roles b
        WHERE b.rolname = ANY({_ROLES_ARRAY}) AND pg_has_role(r.oid, b.oid, 'MEMBER')
        ORDER BY 1),
  EXISTS(SELECT 1 FROM pg_extension e
         JOIN pg_depend d ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
              AND d.classid = 'pg_proc'::regclass
         JOIN pg_proc p ON p.oid = d.objid
         WHERE e.extname = 'dblink' AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
               AND has_schema_privilege(r.oid, p.pronamespace, 'USAGE')),
  ARRAY(SELECT s.srvname::text FROM pg_foreign_server s
        WHERE has_server_privilege(r.oid, s.oid, 'USAGE') ORDER BY 1)
FROM pg_roles r WHERE r.oid = {{who}}
"""
_HOW_TO = (
    "create a role that can only read naslab's tables with `naslab db grant-reader "
    "--storage ADMIN_URL` (it prints the URL to use), then run the console as it: "
    f"`naslab sql --storage READER_URL ...`, or set {SQL_URL_ENV}=READER_URL (in "
    "Python: Store(READER_URL).sql.query(...))")


def role_risks(conn: Connection, who: str = "(SELECT oid FROM pg_roles WHERE "
               "rolname = session_user)") -> tuple[str, list[str]]:
    """The role's name and what it may do beyond reading tables (empty: nothing).

    ``who`` is an SQL expression for the role's oid (default: the session user,
    which a query cannot change; ``current_user`` it can).
    """
    row = conn.exec_driver_sql(_RISKS_SQL.format(who=who)).one()
    name, superuser, createrole, bypassrls, replication, members, dblink, servers = row
    if superuser:  # nothing else matters
        return str(name), ["is a superuser"]
    risks = [text for flag, text in (
        (createrole, "has CREATEROLE"),
        (bypassrls, "has BYPASSRLS"), (replication, "has REPLICATION")) if flag]
    risks += [f"is a member of {m}" for m in members]
    if dblink:
        risks.append("may call dblink (move it to a schema the role cannot use: "
                     "ALTER EXTENSION dblink SET SCHEMA ...)")
    risks += [f"may use foreign server {s}" for s in servers]
    return str(name), risks


def console_refusal(conn: Connection) -> str | None:
    """Why the console must not run SQL on this PostgreSQL connection (one line), or
    None when its session user can do no more than read."""
    name, risks = role_risks(conn)
    if not risks:
        return None
    return (f"refusing to run SQL as PostgreSQL role {name!r}, which {', '.join(risks)}: "
            "a query could run programs on the server, read or write its files or end "
            f"other sessions, whatever the READ ONLY transaction; {_HOW_TO}")


@dataclass(frozen=True)
class ReaderGrant:
    """What :func:`grant_reader` did."""

    #: The role's name.
    role: str
    #: Whether the role was new (else its attributes and grants were updated).
    created: bool
    #: The schema of naslab's tables.
    schema: str
    #: The tables and views it may SELECT, by name.
    objects: tuple[str, ...]
    #: The URL to connect the console with (the password in it when known).
    url: str
    #: Whether :attr:`url` holds the password (a kept password is not known).
    url_has_password: bool
    #: What keeps the console from running as this role, if anything (one line each).
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """A few lines for the CLI."""
        verb = "created" if self.created else "updated"
        lines = [f"{verb} role {self.role}: it may log in and SELECT {len(self.objects)} "
                 f"naslab tables and views in schema {self.schema}, and nothing else",
                 f"console URL: {self.url}"]
        if not self.url_has_password:
            lines.append("(its password is unchanged: put it in the URL, or give --password)")
        lines.append(f"use it: naslab sql --storage URL \"SELECT ...\" (or set {SQL_URL_ENV}=URL)")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def require_postgres(url: str | None) -> None:
    """ConfigError unless the storage URL (None: ``$NASLAB_STORAGE`` or the default)
    is a PostgreSQL one; checked before anything is opened or created."""
    sa_url, _ = parse_url(storage_url(url))
    _refuse_other(sa_url.get_backend_name(), sa_url.render_as_string(hide_password=True))


def _refuse_other(dialect: str, shown: str) -> None:
    if dialect != "postgresql":
        raise ConfigError(
            f"a reader role is for PostgreSQL stores; {shown} is {dialect}, where naslab "
            "sql already cannot write (it opens the database file read-only)")


def _check_inputs(db: Database, role: str, password: str | None) -> None:
    _refuse_other(db.dialect, db.url)
    if not isinstance(role, str) or not _ROLE_NAME.fullmatch(role) or role.startswith("pg_"):
        raise ConfigError(
            f"--role must be a lowercase PostgreSQL name (letters, digits, _; at most 63; "
            f"not starting with pg_), got {role!r}")
    if password is not None and (not isinstance(password, str) or not password
                                 or "\x00" in password or len(password) > 1000):
        raise ConfigError("--password must be 1 to 1000 characters (no NUL)")


def _set_password(conn: Connection, quoted: str, role: str, password: str) -> None:
    """Set the password as a SCRAM verifier made here when the driver can (so the
    clear text is never sent nor logged), else as text quoted by the server."""
    raw: Any = conn.connection.dbapi_connection
    pgconn = getattr(raw, "pgconn", None)
    secret = password
    if pgconn is not None and hasattr(pgconn, "encrypt_password"):
        secret = pgconn.encrypt_password(password.encode(), role.encode(),
                                         b"scram-sha-256").decode()
    literal = conn.exec_driver_sql("SELECT quote_literal(%(p)s)", {"p": secret}).scalar_one()
    conn.exec_driver_sql(f"ALTER ROLE {quoted} PASSWORD {literal}")


def _naslab_objects(conn: Connection) -> tuple[str, list[str]]:
    """The schema of naslab's tables, and its tables and views named ``naslab_*``."""
    schema = conn.exec_driver_sql(
        "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = 'naslab_alembic_version'::regclass").scalar_one()
    names = [r[0] for r in conn.exec_driver_sql(
        "SELECT c.relname::text FROM pg_class c JOIN pg_class v "
        "ON v.oid = 'naslab_alembic_version'::regclass AND c.relnamespace = v.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm') AND left(c.relname, 7) = 'naslab_' ORDER BY 1")]
    return str(schema), names


def _apply(conn: Connection, role: str, password: str | None) -> tuple[bool, str, list[str]]:
    """Create or update ``role`` and its grants; (created, schema, objects)."""
    q = conn.dialect.identifier_preparer.quote
    me = conn.exec_driver_sql("SELECT session_user::text").scalar_one()
    if role == me:
        raise ConfigError(f"--role {role!r} is the role connected in --storage (the one "
                          "that owns the store); name a separate role for reading")
    owned = conn.exec_driver_sql(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        f"WHERE r.rolname = '{role}'").scalar_one()
    if owned:
        raise ConfigError(f"role {role!r} owns {owned} table(s) or view(s) in this database, "
                          "so it can change them; name a separate role for reading")
    exists = conn.exec_driver_sql(
        f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'").first() is not None
    attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
    conn.exec_driver_sql(f"{'ALTER' if exists else 'CREATE'} ROLE {q(role)} {attrs}")
    if password is not None:
        _set_password(conn, q(role), role, password)
    for member_of in conn.exec_driver_sql(  # direct grants of the privileged roles
            "SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
            f"JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '{role}' "
            f"AND b.rolname = ANY({_ROLES_ARRAY})").scalars().all():
        conn.exec_driver_sql(f"REVOKE {q(member_of)} FROM {q(role)}")
    schema, objects = _naslab_objects(conn)
    database = conn.exec_driver_sql("SELECT current_database()::text").scalar_one()
    for statement in (
        f"ALTER ROLE {q(role)} IN DATABASE {q(database)} SET default_transaction_read_only = on",
        f"ALTER ROLE {q(role)} IN DATABASE {q(database)} SET search_path = {q(schema)}",
        f"GRANT CONNECT ON DATABASE {q(database)} TO {q(role)}",
        f"REVOKE CREATE ON DATABASE {q(database)} FROM {q(role)}",
        f"GRANT USAGE ON SCHEMA {q(schema)} TO {q(role)}",
        f"REVOKE CREATE ON SCHEMA {q(schema)} FROM {q(role)}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {q(schema)} FROM {q(role)}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q(schema)} FROM {q(role)}",
        *(f"GRANT SELECT ON {q(schema)}.{q(name)} TO {q(role)}" for name in objects),
    ):
        conn.exec_driver_sql(statement)
    return not exists, schema, objects


def grant_reader(db: Database, role: str = DEFAULT_ROLE, password: str | None = None
                 ) -> ReaderGrant:
    """Create (or update) a PostgreSQL role that may log in and SELECT naslab's tables
    and views, and nothing else; in one transaction, idempotent.

    Args:
        db: the store's database (``store.database``), connected as a role that may
            create roles (a superuser, or one with CREATEROLE) and grant on naslab's
            tables (their owner).
        role: the reader's name.
        password: its password; default: a new random one for a new role, the old one
            for an existing role.

    Raises:
        ConfigError: not PostgreSQL, a bad name or password, a role that is the
            connected one or owns tables, or one that stays privileged through
            another role's membership (nothing is changed then).
        StorageError: the database refused (e.g. the connected role may not create
            roles).
    """
    _check_inputs(db, role, password)
    db.check_open()
    try:
        with db.connect() as conn, conn.begin():
            exists = conn.exec_driver_sql(
                f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'").first() is not None
            if password is None and not exists:
                password = secrets.token_urlsafe(18)
            created, schema, objects = _apply(conn, role, password)
            _, risks = role_risks(conn, f"(SELECT oid FROM pg_roles WHERE rolname = '{role}')")
            hard = [r for r in risks if not r.startswith(("may call dblink", "may use foreign"))]
            if hard:
                raise ConfigError(f"role {role!r} still {', '.join(hard)} (through another "
                                  "role); revoke that, or name another --role; nothing changed")
    except SQLAlchemyError as exc:
        raise db.error(f"set up the reader role {role!r}", exc) from exc
    url = db.sa_url.set(username=role, password=password)
    warnings = tuple(f"the console will refuse role {role!r} while it {r}" for r in risks)
    return ReaderGrant(role, created, schema, tuple(objects),
                       url.render_as_string(hide_password=False), password is not None,
                       warnings)
