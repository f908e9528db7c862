"""Every gate has a passing and a failing case."""

import math

import pytest

from pipelines.steps.release import gates


@pytest.mark.parametrize(
    ("kwargs", "passed"),
    [
        (dict(records_in=10, accepted=7, quarantined=3), True),
        # a record lost between reading and writing breaks conservation
        (dict(records_in=10, accepted=7, quarantined=2), False),
        (dict(records_in=10, accepted=5, quarantined=2, filtered=3), True),
    ],
)
def test_conservation(kwargs, passed):
    assert gates.conservation(**kwargs).passed is passed


def test_non_empty():
    assert gates.non_empty(count=1, what="records").passed
    assert not gates.non_empty(count=0, what="records").passed  # nothing to train on


def test_schema_matches():
    good = {
        name: ("int64" if kind == "int64" else "string")
        for name, kind in gates.RECORD_SCHEMA.items()
    }
    assert gates.schema_matches(good).passed
    # a dropped column is schema drift
    assert not gates.schema_matches({k: v for k, v in good.items() if k != "subject"}).passed
    # a line number stored as text is schema drift
    assert not gates.schema_matches({**good, "source_line": "string"}).passed


def test_no_residual_pii():
    assert gates.no_residual_pii({"PERSON": 0}).passed
    result = gates.no_residual_pii({"PERSON": 2, "EMAIL_ADDRESS": 1})  # scrubber missed three
    assert not result.passed and "3 residual" in result.description


@pytest.mark.parametrize(
    ("epsilon", "passed"), [(7.9, True), (8.0, True), (9.5, False), (math.nan, False)]
)
def test_epsilon_within_budget(epsilon, passed):
    assert gates.epsilon_within_budget(epsilon=epsilon, target_epsilon=8.0).passed is passed


def test_lora_tensors_trained():
    assert gates.lora_tensors_trained(total=4, changed=4, finite=True).passed
    # Opacus #820: a tensor that never moved means the hooks missed it
    assert not gates.lora_tensors_trained(total=4, changed=3, finite=True).passed
    assert not gates.lora_tensors_trained(total=4, changed=4, finite=False).passed  # NaN
    assert not gates.lora_tensors_trained(total=0, changed=0, finite=True).passed  # no LoRA


def test_base_weights_frozen():
    assert gates.base_weights_frozen(unchanged=True, before="a", after="a").passed
    assert not gates.base_weights_frozen(unchanged=False, before="a", after="b").passed


def test_exposure_within_bound():
    assert gates.exposure_within_bound(exposures=[1.0, 2.5], bound=3.0).passed
    assert not gates.exposure_within_bound(exposures=[1.0, 9.9], bound=3.0).passed  # memorized
    empty = gates.exposure_within_bound(exposures=[], bound=3.0)  # nothing measured: fail closed
    assert not empty.passed and "audit.canaries_file" in empty.description


def test_membership_inference_bounded():
    ok = gates.membership_inference_bounded(
        attacks={"loss": (0.56, 0.48), "zlib": (0.52, 0.44)}, bound=0.55
    )
    assert ok.passed  # 0.56 is within noise of the bound: not significant
    # an attack that beats the bound even at its 95% lower confidence limit: members leak
    leak = gates.membership_inference_bounded(attacks={"min_k": (0.80, 0.70)}, bound=0.55)
    assert not leak.passed and "min_k" in leak.description
    assert not gates.membership_inference_bounded(attacks={}, bound=0.55).passed


def test_no_pii_extracted():
    assert gates.no_pii_extracted(probes=32, extracted=0).passed
    assert not gates.no_pii_extracted(probes=32, extracted=1).passed  # the model leaked a value
    assert gates.no_pii_extracted(probes=0, extracted=0).passed  # nothing to leak
