"""jupyter-codedistiller."""
