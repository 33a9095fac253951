"""fashion-toy: an example project that benchmarks a model of its own with quantbench."""
