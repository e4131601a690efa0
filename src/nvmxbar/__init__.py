"""nvmxbar: train small DNNs for analog NVM crossbars, map them, and measure accuracy, area and energy."""

__version__ = "0.1.0"
