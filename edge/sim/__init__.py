"""Simulated inverters built from the same register maps as the HAL."""
