"""Local training only: each client trains its own model on its own data and never communicates.
The lower reference point of pFL (no collaboration): the method interface (methods/base.py) with
nothing shared and the whole model kept on the client.
"""
from methods import register
from methods.base import Method


@register
class Local(Method):
    name = "local"
    newcomer = "scratch"  # trained from the initial model on its own data as long as a participant was
    paper = ""  # no paper: the no-collaboration reference
    shared = "none"
    personal = "all"
