"""The domain: what an evaluation is, named once and torch-free (design points, networks, fault specs, BN
protocols, EvalSpec, recipes, statistics, the paper's constants, errors). Every other layer may import it."""
