"""Entropy coding on exact integers: the range coding tables and coders
(Gaussian rows, bisection for mixtures, bounded escapes, bands), the
entropy-parameter path and its serial loop, the global reference search,
SLIMD's coder. The latent codecs (`tflic.latent_codecs`) compose them."""
