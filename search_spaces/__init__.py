"""Search spaces: the architecture graph type, the SearchSpace API and built-in spaces."""
