"""The cluster PKI: X.509 primitives (`x509`), the namespace root and leaf policy
(`authority`), and the Secrets that carry certificates as PGO names them (`certificates`)."""
