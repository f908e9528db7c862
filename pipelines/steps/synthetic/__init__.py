"""The bundled demo corpus: a synthetic generator with its ground truth (corpus) and the planted
poisoning used by the demo and tests (poison). Never used on real data.
"""
