"""The recipe of the bundled default model (``clamp3 train default-model``); see :mod:`.recipe`."""
