"""bidl-train: train, evaluate and deploy deep spiking neural networks."""
__version__ = '0.1.0'
