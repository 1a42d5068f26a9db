"""tinyhar: activity recognition from wearable IMUs to a microcontroller, verified on the device."""

__version__ = "0.1.0"
