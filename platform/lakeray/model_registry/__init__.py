"""The model registry: registered models are catalog securables, versions live beside them."""
