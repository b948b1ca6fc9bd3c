"""Demo data generators that write the real on-disk formats."""
from .gestures import SyntheticGesture, make_synthetic_gestures

__all__ = ['SyntheticGesture', 'make_synthetic_gestures']
