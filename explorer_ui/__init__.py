"""The explorer website: Jinja2 pages and the live block feed (see the explorer issue)."""
