"""The dataset layout the project reads and writes: split and label folder names, manifest columns.

::

    DATASET/{train,val,test}/{normal,abnormal}/<stem>.<png|jpg|bmp|tif|...>
    DATASET/labels/<stem>.txt        YOLO lines "class cx cy w h" (normalised), one per string
    DATASET/manifest.csv             stem, split, label, embryo_id, frame_index, boxes (JSON)
"""

SPLITS = ("train", "val", "test")
LABELS = ("normal", "abnormal")  # CS-free frames, frames with strings
MANIFEST_FIELDS = ("stem", "split", "label", "embryo_id", "frame_index", "boxes")
