"""``clamp3 demo``: embed a few inputs of every modality and print their cosine similarities."""
