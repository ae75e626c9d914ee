"""Entry point: see :mod:`gan_partseg.results.part_detector` (``--help`` lists the options)."""

from gan_partseg.results.part_detector import main

if __name__ == "__main__":
    main()
