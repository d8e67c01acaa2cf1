"""pgBackRest: what it contributes to PostgreSQL and Patroni, and (with the backup work) its
configuration, repository host and Jobs. Nothing outside this package spells a pgBackRest
command line."""
