"""Entry point: see :mod:`gan_partseg.results.inversion_comparison` (``--help`` lists the options)."""

from gan_partseg.results.inversion_comparison import main

if __name__ == "__main__":
    main()
