"""Can the explanation be trusted: sanity checks, degenerate outputs, adversarial inputs."""
