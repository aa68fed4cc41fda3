"""The ground floor: job functions, their catalogue, settings and queue helpers. Never imports Flask."""
