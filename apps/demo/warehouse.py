"""The demo warehouse: seller-union click data, generated deterministically with numpy.

Three tables, as the built-in templates expect them:

- ``users`` (user_id, age, gender, city_tier, is_vip, signup_days)
- ``items`` (item_id, category, price, seller_rating, discount)
- ``impressions`` (ds, user_id, item_id, position, hour, clicked)

``clicked`` is drawn from a known logistic model of the features (:func:`click_logit`), so a trained model
can reach about the AUC of that model and no more. ``price`` is linear in category, seller rating and
discount plus noise, so linear regression has a meaningful R². A few feature columns have NULLs (age,
signup_days, gender, seller_rating) so that filling missing values matters. (ds, user_id, item_id, hour) is
unique, so it can serve as the down-sampling key.

The same seed and size always give the same rows. ``load_demo_into_mysql`` copies them into MySQL/MariaDB.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from apps.templates.nodes.base import IDENTIFIER_RE

DEMO_SEED = 20261001
FIRST_DAY = datetime.date(2026, 10, 1)
DAYS = 30
CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "toys", "books", "food", "auto", "garden")
# Base price per category (the regression template learns these back, with rating and discount effects).
CATEGORY_PRICE = np.array([180.0, 60.0, 90.0, 40.0, 75.0, 35.0, 20.0, 15.0, 120.0, 55.0])
CATEGORY_CLICK = np.array([0.10, 0.25, 0.0, 0.20, -0.05, 0.05, -0.20, 0.15, -0.25, -0.10])
CITY_TIERS = ("tier1", "tier2", "tier3", "tier4")
CITY_CLICK = np.array([0.20, 0.10, 0.0, -0.15])
GENDERS = ("F", "M")
TABLES = ("users", "items", "impressions")


@dataclass(frozen=True)
class WarehouseSummary:
    path: Path
    users: int
    items: int
    impressions: int
    click_rate: float
    created: bool


def sizes_for(impressions: int) -> tuple[int, int]:
    """Users and items for a warehouse of ``impressions`` rows (about 40 impressions per user)."""
    return max(200, impressions // 40), max(100, impressions // 100)


def click_logit(*, position, is_vip, discount, seller_rating, price, age, signup_days, hour, city, category, gender):
    """The true model of a click, on the true (not yet NULL-masked) feature values."""
    evening = (hour >= 19) & (hour <= 23)
    night = (hour >= 1) & (hour <= 6)
    affinity = (gender == 0) & ((category == 1) | (category == 3))  # women × fashion, beauty
    return (
        -1.35
        - 0.17 * (position - 1)
        + 0.9 * is_vip
        + 2.4 * discount
        + 0.5 * (seller_rating - 3.5)
        - 0.45 * np.log(price / 50.0)
        - 0.012 * (age - 35)
        - 0.2 * np.log1p(signup_days / 30.0)
        + 0.35 * evening
        - 0.3 * night
        + CITY_CLICK[city]
        + CATEGORY_CLICK[category]
        + 0.5 * affinity
    )


def _with_nulls(values: np.ndarray, rng: np.random.Generator, rate: float) -> np.ndarray:
    out = values.astype(np.float64)
    out[rng.random(len(values)) < rate] = np.nan
    return out


def _labels(codes: np.ndarray, labels: tuple[str, ...], nulls: np.ndarray | None = None) -> np.ndarray:
    out = np.asarray(labels, dtype=object)[codes]
    if nulls is not None:
        out[nulls] = None
    return out


def generate_demo_tables(*, impressions: int = 200_000, seed: int = DEMO_SEED) -> dict[str, dict[str, np.ndarray]]:
    """The three tables as numpy columns; NULLs are NaN (numbers) or None (text)."""
    rng = np.random.default_rng(seed)
    n_users, n_items = sizes_for(impressions)

    age = np.clip(np.rint(rng.normal(36, 11, n_users)), 18, 75)
    gender = rng.integers(0, 2, n_users)
    city = rng.choice(4, n_users, p=[0.2, 0.3, 0.3, 0.2])
    is_vip = rng.random(n_users) < 0.12
    signup_days = np.rint(rng.exponential(400, n_users)).clip(1, 3650)
    users = {
        "user_id": np.arange(1, n_users + 1),
        "age": _with_nulls(age, rng, 0.03),
        "gender": _labels(gender, GENDERS, rng.random(n_users) < 0.02),
        "city_tier": _labels(city, CITY_TIERS),
        "is_vip": is_vip,
        "signup_days": _with_nulls(signup_days, rng, 0.05),
    }

    category = rng.integers(0, len(CATEGORIES), n_items)
    rating = np.round(np.clip(rng.normal(4.0, 0.6, n_items), 1.0, 5.0), 1)
    discount = np.round(rng.choice([0.0, 0.05, 0.1, 0.2, 0.3, 0.5], n_items, p=[0.4, 0.15, 0.2, 0.12, 0.08, 0.05]), 2)
    price = CATEGORY_PRICE[category] + 12.0 * (rating - 4.0) - 40.0 * discount + rng.normal(0, 18, n_items)
    price = np.round(np.clip(price, 1.0, None), 2)
    items = {
        "item_id": np.arange(1, n_items + 1),
        "category": _labels(category, CATEGORIES),
        "price": price,
        "seller_rating": _with_nulls(rating, rng, 0.04),
        "discount": discount,
    }

    # Impressions: popular items are shown more; the key (ds, user, item, hour) is unique.
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.7
    popularity /= popularity.sum()
    chosen = np.empty(0, dtype=np.int64)
    draws: dict[str, np.ndarray] = {}
    while len(chosen) < impressions:
        m = int((impressions - len(chosen)) * 1.05) + 16
        batch = {
            "day": rng.integers(0, DAYS, m),
            "user": rng.integers(0, n_users, m),
            "item": rng.choice(n_items, m, p=popularity),
            "hour": rng.choice(24, m, p=_hour_weights()),
            "position": rng.integers(1, 21, m),
            "u": rng.random(m),
        }
        for name, values in batch.items():
            draws[name] = np.concatenate([draws.get(name, np.empty(0, dtype=values.dtype)), values])
        key = ((draws["day"] * n_users + draws["user"]) * n_items + draws["item"]) * 24 + draws["hour"]
        _, first = np.unique(key, return_index=True)
        chosen = np.sort(first)[:impressions]
    d = {name: values[chosen] for name, values in draws.items()}
    u, i = d["user"], d["item"]
    logit = click_logit(
        position=d["position"],
        is_vip=is_vip[u],
        discount=discount[i],
        seller_rating=rating[i],
        price=price[i],
        age=age[u],
        signup_days=signup_days[u],
        hour=d["hour"],
        city=city[u],
        category=category[i],
        gender=gender[u],
    )
    clicked = (d["u"] < 1.0 / (1.0 + np.exp(-logit))).astype(np.int32)
    order = np.lexsort((d["hour"], d["day"]))  # stored in time order, like a real log
    impressions_table = {
        "day": d["day"][order],  # days after FIRST_DAY; stored as the DATE column ds
        "user_id": u[order] + 1,
        "item_id": i[order] + 1,
        "position": d["position"][order],
        "hour": d["hour"][order],
        "clicked": clicked[order],
    }
    return {"users": users, "items": items, "impressions": impressions_table}


def _hour_weights() -> np.ndarray:
    hours = np.arange(24)
    weights = 1.0 + 1.5 * np.exp(-((hours - 21) ** 2) / 8.0) + 0.8 * np.exp(-((hours - 12) ** 2) / 6.0)
    weights[1:7] *= 0.3
    return weights / weights.sum()


_CREATE = {
    "users": "CREATE TABLE users AS SELECT CAST(user_id AS INTEGER) AS user_id, "
    "CAST(CASE WHEN isnan(age) THEN NULL ELSE age END AS INTEGER) AS age, CAST(gender AS VARCHAR) AS gender, "
    "CAST(city_tier AS VARCHAR) AS city_tier, CAST(is_vip AS BOOLEAN) AS is_vip, "
    "CAST(CASE WHEN isnan(signup_days) THEN NULL ELSE signup_days END AS INTEGER) AS signup_days FROM src",
    "items": "CREATE TABLE items AS SELECT CAST(item_id AS INTEGER) AS item_id, CAST(category AS VARCHAR) AS category, "
    "CAST(price AS DECIMAL(10, 2)) AS price, "
    "CAST(CASE WHEN isnan(seller_rating) THEN NULL ELSE seller_rating END AS DOUBLE) AS seller_rating, "
    "CAST(discount AS DOUBLE) AS discount FROM src",
    "impressions": f"CREATE TABLE impressions AS SELECT CAST(DATE '{FIRST_DAY.isoformat()}' + CAST(day AS INTEGER) AS DATE) "
    "AS ds, CAST(user_id AS INTEGER) AS user_id, "
    "CAST(item_id AS INTEGER) AS item_id, CAST(position AS INTEGER) AS position, CAST(hour AS INTEGER) AS hour, "
    "CAST(clicked AS INTEGER) AS clicked FROM src",
}


def build_demo_warehouse(
    path: str | Path, *, impressions: int = 200_000, seed: int = DEMO_SEED, overwrite: bool = False
) -> WarehouseSummary:
    """Create the DuckDB demo warehouse at ``path`` (idempotent unless ``overwrite``).

    The file is written under a temporary name and renamed into place, so a reader never sees half of it.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        return _summary(path, created=False)
    if impressions < 1:
        raise ValueError("impressions must be at least 1")
    path.parent.mkdir(parents=True, exist_ok=True)
    tables = generate_demo_tables(impressions=impressions, seed=seed)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            for name in TABLES:
                src = tables[name]  # noqa: F841  (DuckDB scans the local dict of numpy columns named src)
                con.execute(_CREATE[name])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    return _summary(path, created=True)


def _summary(path: Path, *, created: bool) -> WarehouseSummary:
    con = duckdb.connect(str(path), read_only=True)
    try:
        users = _aggregate(con, "SELECT COUNT(*) FROM users")[0]
        items = _aggregate(con, "SELECT COUNT(*) FROM items")[0]
        n, rate = _aggregate(con, "SELECT COUNT(*), AVG(clicked) FROM impressions")
    finally:
        con.close()
    return WarehouseSummary(path, int(users), int(items), int(n), float(rate or 0.0), created)


def _aggregate(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The row of an aggregate query without GROUP BY, which always returns exactly one."""
    row = con.execute(sql).fetchone()
    assert row is not None
    return row


# -- MySQL / MariaDB copy ----------------------------------------------------------------------------------
_MYSQL_TABLES = {
    "users": "CREATE TABLE users (user_id INT NOT NULL PRIMARY KEY, age INT NULL, gender VARCHAR(8) NULL, "
    "city_tier VARCHAR(16) NOT NULL, is_vip BOOLEAN NOT NULL, signup_days INT NULL)",
    "items": "CREATE TABLE items (item_id INT NOT NULL PRIMARY KEY, category VARCHAR(32) NOT NULL, "
    "price DECIMAL(10, 2) NOT NULL, seller_rating DOUBLE NULL, discount DOUBLE NOT NULL)",
    "impressions": "CREATE TABLE impressions (impression_no BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "ds DATE NOT NULL, user_id INT NOT NULL, item_id INT NOT NULL, position INT NOT NULL, hour INT NOT NULL, "
    "clicked INT NOT NULL, KEY impressions_ds (ds))",
}
_MYSQL_COLUMNS = {
    "users": ("user_id", "age", "gender", "city_tier", "is_vip", "signup_days"),
    "items": ("item_id", "category", "price", "seller_rating", "discount"),
    "impressions": ("ds", "user_id", "item_id", "position", "hour", "clicked"),
}


def load_demo_into_mysql(
    warehouse: str | Path,
    *,
    database: str,
    host: str = "127.0.0.1",
    port: int = 3306,
    user: str = "root",
    password: str | None = None,
    batch_rows: int = 5_000,
) -> dict[str, int]:
    """Copy the demo tables of the DuckDB file ``warehouse`` into ``database`` (created if missing), in batches.

    Tables are replaced when their row counts differ from the warehouse's; otherwise left alone (idempotent).
    Impressions keep the warehouse's row order (an auto-increment key), so both sources read rows in the
    same order. Returns the row count per table.
    """
    import MySQLdb  # optional: mysqlclient is installed only where DATABASE_URL or a source asks for MySQL

    if not IDENTIFIER_RE.match(database):
        raise ValueError("database must be a name of letters, digits and underscores")
    kwargs = {"host": host, "port": int(port), "user": user, "charset": "utf8mb4", "connect_timeout": 5}
    if password is not None:
        kwargs["password"] = password
    source = duckdb.connect(str(warehouse), read_only=True)
    con = MySQLdb.connect(**kwargs)
    counts = {}
    try:
        cursor = con.cursor()
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
        cursor.execute(f"USE `{database}`")
        for table in TABLES:
            wanted = _aggregate(source, f"SELECT COUNT(*) FROM {table}")[0]
            if _mysql_count(cursor, database, table) == wanted:
                counts[table] = wanted
                continue
            cursor.execute(f"DROP TABLE IF EXISTS `{table}`")
            cursor.execute(_MYSQL_TABLES[table])
            columns = _MYSQL_COLUMNS[table]
            insert = f"INSERT INTO `{table}` ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            order = " ORDER BY rowid" if table == "impressions" else ""
            result = source.execute(f"SELECT {', '.join(columns)} FROM {table}{order}")
            while rows := result.fetchmany(batch_rows):
                cursor.executemany(insert, rows)
                con.commit()
            counts[table] = wanted
        cursor.close()
    finally:
        con.close()
        source.close()
    return counts


def _mysql_count(cursor, database: str, table: str) -> int | None:
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s", (database, table)
    )
    if not cursor.fetchone()[0]:
        return None
    cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
    return int(cursor.fetchone()[0])
