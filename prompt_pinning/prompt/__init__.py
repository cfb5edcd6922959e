"""The prompt: attention syntax, pinnable units, their weights as a vector, and tokenizers."""
