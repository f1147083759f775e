"""Introspection: what a built model holds, without training it.

`summary` (per-stage shapes, parameters, mult-adds and memory), `tables` (the stage table as text), `depth`
(published depth counts), `anatomy` (one block traced step by step), `hooks` (forward hooks that are always
removed). Imports only `models` and the base modules.
"""
