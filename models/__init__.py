"""The model contract shared by training and serving: labels, network, preprocessing, checkpoint, Grad-CAM."""

__version__ = "0.1.0"
