"""Tissues of the torso phantoms: organ label ids and linear attenuation.

Attenuation at an effective energy of 65 keV (mass attenuation from NIST XCOM x density):

=================  =========  ==========
tissue             g/cm^3     mu (1/mm)
=================  =========  ==========
air                0.0012     0.0
lung (inflated)    0.26       0.0052
fat                0.95       0.0180
water, stomach     1.00       0.0200
soft tissue        1.03       0.0205
muscle, kidney     1.05       0.0209
blood, liver       1.06       0.0211
marrow (spongy)    1.18       0.0265
cortical bone      1.92       0.0560
=================  =========  ==========
"""

from __future__ import annotations

import enum

EFFECTIVE_ENERGY_KEV = 65.0


class Organ(enum.IntEnum):
    """Label ids of :func:`lowdose.phantoms.torso.torso_phantom` (uint8 label volume)."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    SOFT_TISSUE = 3
    LUNG = 4
    LUNG_VESSEL = 5
    HEART = 6
    AORTA = 7
    LIVER = 8
    STOMACH = 9
    STOMACH_AIR = 10
    KIDNEY = 11
    BONE_CORTICAL = 12
    BONE_MARROW = 13
    SPINAL_CANAL = 14
    BOWEL_GAS = 15


MU_PER_MM: dict[str, float] = {
    "air": 0.0,
    "lung": 0.0052,
    "fat": 0.0180,
    "water": 0.0200,
    "soft": 0.0205,
    "muscle": 0.0209,
    "blood": 0.0211,
    "liver": 0.0212,
    "kidney": 0.0209,
    "marrow": 0.0265,
    "cortical": 0.0560,
}
