"""Entry point: see :mod:`gan_partseg.results.cards` (regenerates every bundled model card)."""

from gan_partseg.results.cards import write_cards

if __name__ == "__main__":
    write_cards()
