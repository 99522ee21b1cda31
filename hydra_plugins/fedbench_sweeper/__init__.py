"""fedbench's Hydra sweeper plugin (`hydra/sweeper=trials`, see trials.py). It lives under the
`hydra_plugins` namespace package for the reason fedbench_launcher does: Hydra instantiates plugins
from there only."""
