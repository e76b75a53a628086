"""vlmkit: adapt vision-language models to text extraction and measure the result honestly."""

__version__ = "0.1.0"
