"""Real images into the generator: the latent optimizer and its perceptual distances."""
