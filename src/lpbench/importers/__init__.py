"""Models trained elsewhere, brought into lpbench run folders: the paper's TF checkpoints."""

from lpbench.importers.tf import TFImportError, convert_tf_checkpoint, import_tf
from lpbench.importers.tf_checkpoint import TFCheckpoint, TFCheckpointError

__all__ = [
    "TFCheckpoint",
    "TFCheckpointError",
    "TFImportError",
    "convert_tf_checkpoint",
    "import_tf",
]
