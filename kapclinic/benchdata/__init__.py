"""Synthetic clinic-scale data and the benchmark plumbing (issue #7).

- `loader.BulkLoader`: fast bulk inserts with pre-assigned primary keys (COPY on PostgreSQL,
  executemany on SQLite), so related rows are written without a round trip per row.
- `plan`: a deterministic per-patient history (dates of intake, dosing and integration sessions,
  questionnaires) that every domain generator shares.
- `foundation`, `domains`: one generator per domain (patients, intake, sessions, measures, notes,
  scheduling). A domain whose models or tables do not exist yet is skipped and reported.
- `settings`, `urls`, `views`, `middleware`: the bench-only server configuration (framework-floor
  views, a SQL-queries-per-request header). Never used by the normal project settings.

Synthetic data only (Faker with a fixed seed); nothing here is a clinical rule.
"""
