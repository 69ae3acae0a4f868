"""Image type names shared by the data loaders, the metrics and the reports."""

#: The type of a defect-free image (the MVTec AD folder name).
GOOD = "good"
#: The type of an image of unknown label (``sslad predict``).
UNKNOWN = "?"
