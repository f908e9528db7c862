"""Stage 3, integrity: the screens that keep duplicates, backdoors, injections and unusable records
out of training (screens/), the stage that scores and then decides (curate), and the stewards'
decisions that override it (decisions).
"""
