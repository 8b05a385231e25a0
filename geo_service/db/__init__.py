"""Database: the embedded PostGIS cluster, engines, table definitions and migrations."""
