"""Training loops: the GAN, the few-shot head and the auto-shot U-Net, with their shared loop and checkpoints."""
