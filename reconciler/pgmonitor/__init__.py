"""pgMonitor: the postgres_exporter beside PostgreSQL, its queries, and its role in PostgreSQL."""
