"""Models: what a ResNet is and how it is built.

`spec` (ModelSpec, the one description of every variant), `presets` (named specs with their published figures),
`blocks` (the residual blocks and shortcuts), `resnet` (the ResNet module, which records its feature index as it
builds, and `build_model`), `features` (that index: one BlockInfo per block, and `blocks_deleted`), `weights`
(timm/torchvision state_dict converters and pretrained weights), `provenance` (the spec our checkpoints carry, and
what a foreign one says about its network), `export` (standalone source). The lowest layer: imports only
`resnet_core.validation`, `resnet_core.formatting` and `resnet_core.files`.
"""
