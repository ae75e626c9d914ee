"""Entry point: see :mod:`gan_partseg.results.autoshot_settings` (``--help`` lists the options)."""

from gan_partseg.results.autoshot_settings import main

if __name__ == "__main__":
    main()
