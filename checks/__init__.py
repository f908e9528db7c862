"""Asset checks: one small function per rule, gating every stage."""
