"""Entry point: see :mod:`gan_partseg.results.fewshot_table` (``--help`` lists the options)."""

from gan_partseg.results.fewshot_table import main

if __name__ == "__main__":
    main()
