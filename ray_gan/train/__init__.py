"""Data-parallel GAN training on Ray Train."""
