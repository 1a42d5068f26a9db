"""`tinyhar search`: trials of the `tiny` family on Ray Tune, each trained, quantised and run as
firmware on the emulated board; the Pareto front and the best model that fits."""
