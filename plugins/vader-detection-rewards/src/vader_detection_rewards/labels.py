"""The COCO label set of the DETR-family COCO checkpoints (``hustvl/yolos-*``, ``facebook/detr-*``).

91 ids: the original COCO category ids 1-90 with their names, and ``N/A`` for id 0 and for the ids
COCO leaves unused (12, 26, 29, 30, 45, 66, 68, 69, 71, 83). The classification head has one more
output, the "no object" class. The tiny random test models use this ``id2label`` so that the
option ``target`` is validated against the same names as with the real checkpoints.
"""

from __future__ import annotations

#: The placeholder name of unused ids; never a valid target.
PLACEHOLDER = "N/A"

_NAMES = (
    "N/A", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A",
    "N/A", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork", "knife",
    "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A",
    "toilet", "N/A", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "N/A", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)

COCO_ID2LABEL: dict[int, str] = dict(enumerate(_NAMES))
