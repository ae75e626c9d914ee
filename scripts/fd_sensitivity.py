"""Entry point: see :mod:`gan_partseg.results.fd_sensitivity` (``--help`` lists the options)."""

from gan_partseg.results.fd_sensitivity import main

if __name__ == "__main__":
    main()
