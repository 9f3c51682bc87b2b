"""MeloFormer: multitrack MIDI generation with bar-summary sparse attention."""
