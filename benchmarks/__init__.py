"""imapd vs Dovecot benchmark: `python benchmarks/run.py --help`."""
