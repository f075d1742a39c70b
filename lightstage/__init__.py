"""Virtual light stage: Cycles-rendered ground-truth portraits for evaluation and training (not in the zip)."""
