"""Entry point: see :mod:`gan_partseg.results.ship_gan` (``--help`` lists the options)."""

from gan_partseg.results.ship_gan import main

if __name__ == "__main__":
    main()
