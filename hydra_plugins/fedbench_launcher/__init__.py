"""fedbench's Hydra launcher plugin (`hydra/launcher=local`, see local_pool.py).

Hydra only instantiates launchers defined under the `hydra_plugins` namespace package, which is
why this lives here and not in fedbench/. `hydra_plugins` has no __init__.py on purpose (a
namespace package shared with hydra-submitit-launcher and other plugins).
"""
