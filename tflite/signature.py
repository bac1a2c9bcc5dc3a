"""The exported file's signature: its key and tensor names.

The contract between the export (`export.py`, which writes them) and everything that runs
or reads the files (the LiteRT runner, the `CompiledModel` runner, measurements, the apps).
A leaf module, so that a runner can be used by the export's own int8 search without the two
importing each other.
"""

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "video"
OUTPUT_NAME = "probabilities"
LOGITS_NAME = "logits"
