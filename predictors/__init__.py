"""Performance predictors (GNN predictors, baselines, zero-cost proxies). Coming in issue 4."""
