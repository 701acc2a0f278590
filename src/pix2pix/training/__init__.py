"""Training: the loop (`loop`), the D/G step (`step`), checkpoints and resume (`checkpoints`), what a run records
(`records`), and for several processes their agreement (`processes`) and launcher (`launch`)."""
