"""Traffic gateway (the data plane): Traefik v3 with a file provider the operator writes."""
