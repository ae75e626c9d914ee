"""Scoring: segmentation metrics, Frechet distances of generators, and evaluating any segmenter on any labelled set."""
