"""Server-rendered pages (Jinja2), in English and French, and the neutral HTTP types the
triggers convert to and from (so the product never imports azure.functions)."""
