"""Trading: the venue decision, orders, books and portfolio; the analyze-mode exchange in paper/."""
