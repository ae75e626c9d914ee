"""Entry point: see :mod:`gan_partseg.results.posthoc_ema` (``--help`` lists the options)."""

from gan_partseg.results.posthoc_ema import main

if __name__ == "__main__":
    main()
