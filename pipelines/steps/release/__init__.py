"""Stage 6, release: the gates that must hold before a model version is registered (gates), lineage
from source files to model versions (provenance), and the compliance report with its template
(report, templates/).
"""
