"""Entry point: see :mod:`gan_partseg.results.fd_breakdown` (``--help`` lists the options)."""

from gan_partseg.results.fd_breakdown import main

if __name__ == "__main__":
    main()
