"""Stage 2, privacy: PII and secret detection with Presidio and our recognizer packs (pii,
recognizers/), obfuscation normalization with offsets mapped back (normalize), the one
definition of invisible characters it strips (invisible), keyed realistic
surrogates (surrogates), the optional encrypted vault of originals (vault), and the labelled
evaluation behind `sovtune scan --eval` (pii_eval).
"""
