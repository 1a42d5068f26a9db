"""`tinyhar search`: trials of the `tiny` family on Ray Tune, each trained, quantized and run as
firmware on the emulated board; the Pareto front and the best model that fits."""

DEFAULT_TRIALS = 20  # sizes of the tiny family a search trains and measures
