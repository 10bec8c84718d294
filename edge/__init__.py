"""Edge: the hardware abstraction layer (HAL), register maps and simulated inverters."""
