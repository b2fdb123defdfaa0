"""Export and serving: SavedModels that take raw strings, an HTTP service speaking TF Serving's REST format,
TFLite (lesson 14)."""
