"""Talking to Patroni: its REST API, over mutual TLS."""
