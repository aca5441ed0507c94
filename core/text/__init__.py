"""Text: tokenisation, word documents, perturbation and the text explanation methods."""
