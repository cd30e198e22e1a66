"""Networks used in the book (one module each)."""
