"""pgBouncer, the connection pooler of `spec.proxy.pgBouncer`: its configuration files, its
objects (Deployment, Service, ConfigMap, Secret, PodDisruptionBudget), what it needs inside
PostgreSQL (a role, a schema and a function per database, pg_hba lines), and its admin console.
Pure builders, except `admin`, which talks to running pgBouncers."""
