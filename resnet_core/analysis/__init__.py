"""Inside a trained net: what a stored run's model does with one image (`inspect`), where its evidence lies
(`gradcam`), and what the run knows: its classes, and how far an input lies from its training images
(`familiarity`). Imports `runs` and the layers below; independent of `experiments`.
"""
