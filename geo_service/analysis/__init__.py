"""Planning analysis: questions asked of the plan (site check, county summary, nearby items), answered by
PostGIS and served as OGC API – Processes (`/processes`, `/jobs`).

- `inputs`: reading an execute request and every check its inputs pass before any statement runs;
- `statements`: the SQL of each process (areas and lengths in EPSG:4549);
- `processes`: the process descriptions and how each one runs;
- `jobs`: asynchronous executions kept in PostgreSQL, and the runner that works them off;
- `routes`: the HTTP side.
"""
