"""Stage 5, privacy audit: canary exposure (canaries), membership inference (membership), PII and
backdoor extraction probes (extraction), and the suite that runs them on a trained adapter
(suite).
"""
