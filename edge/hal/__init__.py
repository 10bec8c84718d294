"""HAL: canonical points, register-map model, codecs, capability protocols, transport."""
