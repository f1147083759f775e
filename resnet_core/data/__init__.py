"""Data: image sets held as uint8 tensors, batched tensor transforms, and untrusted images.

`sets` (the registry: load, adapt and subset a set by name), `image_data` (ImageData), `synthetic`,
`torchvision_sets`, `folders` (image folders with their decompression-bomb guards), `transforms`, `images` (one
untrusted PNG/JPEG), `fence` (the folders a shared server may read), `location` (the data folder). Imports
`models`, `introspect` and the base modules, never training or runs.
"""
