"""Queries a copy of zonelog's log objects with DuckDB (and, for Parquet,
pyarrow) the way docs/format.md tells users to, and prints what it found
as one JSON object for tests/query.rs to check against the index.

    query.py DIR FORMAT DOCS

DIR holds the log objects (a directory target, or the objects of an S3
target downloaded with their keys as paths); FORMAT is `jsonl` or
`parquet`; DOCS is docs/format.md, whose ```sql blocks are run as written
after their example path is replaced by DIR.
"""

import json
import re
import sys

import duckdb

# The example path the documented queries read; replaced by DIR.
DOC_PATH = "/data/zonelog/"


def doc_queries(docs, fmt):
    """The documented SQL blocks for FORMAT: (label, sql); the view first."""
    blocks = re.findall(r"```sql\n(.*?)```", open(docs, encoding="utf-8").read(), re.S)
    out = []
    for block in blocks:
        label = block.splitlines()[0].removeprefix("--").strip()
        if label.startswith("view, "):
            if label != f"view, {fmt}":
                continue
            label = "view"
        out.append((label, block))
    return out


def rows(con, sql):
    # As text in SQL: Python's datetime of a TIMESTAMPTZ needs pytz.
    sql = f"SELECT COLUMNS(*)::VARCHAR FROM ({sql.strip().rstrip(';')})"
    return [list(row) for row in con.sql(sql).fetchall()]


def main():
    directory, fmt, docs = sys.argv[1:4]
    con = duckdb.connect()
    queries = doc_queries(docs, fmt)
    if not queries or queries[0][0] != "view":
        sys.exit(f"no `-- view, {fmt}` block first in {docs}")
    found = {"docs": {}}
    for label, sql in queries:
        sql = sql.replace(DOC_PATH, directory.rstrip("/") + "/")
        if label == "view":
            con.execute(sql)
        else:
            found["docs"][label] = rows(con, sql)
    found["total"] = con.sql("SELECT count(*) FROM changes").fetchone()[0]
    found["per_op"] = dict(con.sql("SELECT op, count(*) FROM changes GROUP BY op").fetchall())
    found["per_bucket"] = dict(
        con.sql("SELECT bucket, count(*) FROM changes GROUP BY bucket").fetchall()
    )
    found["per_storage_class"] = dict(
        con.sql(
            "SELECT storage_class, count(*) FROM changes "
            "WHERE storage_class IS NOT NULL GROUP BY ALL"
        ).fetchall()
    )
    found["tagged_blue"] = con.sql(
        "SELECT count(*) FROM changes WHERE tags->>'team' = 'blue'"
    ).fetchone()[0]
    columns = [r[0] for r in con.sql("DESCRIBE changes").fetchall()]
    found["columns"] = columns
    if "log_zone" in columns:
        # Partition pruning: the other zone's folder holds nothing, and the
        # plan reads no file for it.
        found["other_zone"] = con.sql(
            "SELECT count(*) FROM changes WHERE log_zone = 'no-such-zone'"
        ).fetchone()[0]
        plan = con.sql(
            "EXPLAIN ANALYZE SELECT count(*) FROM changes WHERE log_zone = 'no-such-zone'"
        ).fetchall()
        found["other_zone_files"] = re.findall(r"Scanning Files: (\d+)/(\d+)", str(plan))
        found["per_log_hour"] = dict(
            con.sql(
                "SELECT strftime(log_date, '%Y-%m-%d') || 'T' || log_hour, count(*) "
                "FROM changes GROUP BY ALL"
            ).fetchall()
        )
    if fmt == "parquet":
        import pyarrow.dataset as ds

        # The manifests beside the objects are not Parquet.
        table = ds.dataset(
            directory, format="parquet", partitioning="hive", exclude_invalid_files=True
        ).to_table()
        found["pyarrow_total"] = table.num_rows
        found["pyarrow_schema"] = {f.name: str(f.type) for f in table.schema}
        ops = table.column("op").to_pylist()
        found["pyarrow_per_op"] = {op: ops.count(op) for op in set(ops)}
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main()
