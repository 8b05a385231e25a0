"""`python -m benchmarks.soak`: editors and readers against one service process for minutes on end; every
write the clients were told succeeded is checked in the database afterwards. See benchmarks/README.md."""
