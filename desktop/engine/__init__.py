"""The inference process: the only package that imports llama_cpp."""
