"""HTTP-level protection: response security headers, CORS, and limits on failed authentication."""
