"""Bad-input corpus: every case is generated into a raw folder at test time (see corpus.py)."""
