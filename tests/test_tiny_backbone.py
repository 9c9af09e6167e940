from vader_core.testing import BackboneContractTests
from vader_plugins.tiny import TinyBackbone


class TestTiny(BackboneContractTests):
    backbone_cls = TinyBackbone
    options = {"frames": 3, "steps": 2}


class TestTinyDPMSolverNoGuidance(BackboneContractTests):
    backbone_cls = TinyBackbone
    options = {"frames": 2, "steps": 3, "scheduler": "dpmsolver", "guidance": 1.0}
