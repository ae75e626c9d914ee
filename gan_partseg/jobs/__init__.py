"""Jobs over folders and data sets: inversion and shots from image folders, generated data sets."""
