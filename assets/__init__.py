"""Software-defined assets, one thin module per stage of the pipeline."""
