"""Ask/tell searchers: random search and regularized evolution."""
