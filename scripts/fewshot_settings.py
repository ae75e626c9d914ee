"""Entry point: see :mod:`gan_partseg.results.fewshot_settings` (``--help`` lists the options)."""

from gan_partseg.results.fewshot_settings import main

if __name__ == "__main__":
    main()
