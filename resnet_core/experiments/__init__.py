"""Experiments built on stored runs and fresh models: signal flow through stacks (`flow_stack`, `flow`,
`flow_text`), shattered gradients, the identity and mistakes labs, degradation (with its nets, its status, the
group a page follows, and seeds), lesion studies, path lengths and loss landscapes. Imports `runs` and the layers
below; independent of `analysis`.
"""
